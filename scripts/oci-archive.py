#!/usr/bin/env python3
"""Writes a reproducible single-layer OCI image archive from a root filesystem directory.

Used by scripts/image; no daemon, no remote image. The same inputs and SOURCE_DATE_EPOCH give a
byte-identical archive: entries are sorted, every mtime is SOURCE_DATE_EPOCH, owners are numeric (root
unless listed with --owner), gzip headers carry no name and no time, and JSON is written with sorted keys.

The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) that also carries a
manifest.json, as `docker save` does since Docker 25, so `ctr images import`, `podman load`,
`docker load`, `kind load image-archive` and `skopeo copy oci-archive:...` all accept it.

usage: oci-archive.py --rootfs DIR --name REF --out FILE [--owner PATH=UID:GID]... [--label K=V]...
                      [--user U] [--entrypoint JSON] [--cmd JSON] [--env K=V]... [--workdir DIR]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import time


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(rootfs, epoch, owners):
    """An uncompressed tar of rootfs with sorted entries, fixed mtimes and numeric owners."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        dirnames.sort()
        for name in dirnames + filenames:
            paths.append(os.path.join(dirpath, name))
    paths.sort(key=lambda p: os.path.relpath(p, rootfs).split(os.sep))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            rel = os.path.relpath(path, rootfs)
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.mtime = epoch
            info.mode = stat.S_IMODE(st.st_mode)
            uid, gid = owners.get(rel, (0, 0))
            info.uid, info.gid = uid, gid
            info.uname, info.gname = "", ""
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                sys.exit(f"oci-archive: unsupported file type: {rel}")
    return buf.getvalue()


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as f:
        f.write(data)
    return out.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rootfs", required=True)
    p.add_argument("--name", required=True, help="full reference, for example example.org/app:1.0")
    p.add_argument("--out", required=True)
    p.add_argument("--owner", action="append", default=[], help="PATH=UID:GID (path relative to rootfs)")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--user", default="")
    p.add_argument("--entrypoint", default="null")
    p.add_argument("--cmd", default="null")
    p.add_argument("--workdir", default="")
    a = p.parse_args()

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    owners = {}
    for o in a.owner:
        path, ids = o.split("=", 1)
        uid, gid = ids.split(":", 1)
        owners[path.strip("/")] = (int(uid), int(gid))
    labels = dict(l.split("=", 1) for l in a.label)

    layer = layer_tar(a.rootfs, epoch, owners)
    layer_gz = gz(layer)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    config = {"Env": a.env, "Labels": labels}
    if a.user:
        config["User"] = a.user
    if json.loads(a.entrypoint) is not None:
        config["Entrypoint"] = json.loads(a.entrypoint)
    if json.loads(a.cmd) is not None:
        config["Cmd"] = json.loads(a.cmd)
    if a.workdir:
        config["WorkingDir"] = a.workdir
    cfg = canonical({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
        "history": [{"created": created, "created_by": "scripts/image"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(layer_gz),
                    "size": len(layer_gz)}],
        "annotations": labels,
    })
    index = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(manifest),
            "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": a.name, "io.containerd.image.name": a.name},
        }],
    })
    blob = lambda d: "blobs/sha256/" + hashlib.sha256(d).hexdigest()
    docker_manifest = canonical([{"Config": blob(cfg), "RepoTags": [a.name], "Layers": [blob(layer_gz)]}])

    files = {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
        "manifest.json": docker_manifest,
        blob(cfg): cfg,
        blob(manifest): manifest,
        blob(layer_gz): layer_gz,
    }
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in ["blobs", "blobs/sha256"]:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, epoch
            tar.addfile(info, io.BytesIO(files[name]))
    os.replace(tmp, a.out)
    print(sha(manifest))


if __name__ == "__main__":
    main()
