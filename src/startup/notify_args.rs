//! The `--notify-*` flags of `run`: outbound notifications (CloudEvents over HTTP(S)).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::BoxError;
use crate::notify::NotifyConfig;
use secret_rotator_core::files::check_private;

/// Outbound notification flags.
#[derive(Args, Debug, Clone)]
pub struct NotifyArgs {
    /// An HTTP(S) endpoint that receives the notifications (CloudEvents 1.0, structured JSON). Repeat the
    /// flag for more sinks; the environment variable takes a comma-separated list. None: no notifications.
    #[arg(
        long = "notify-url",
        value_name = "URL",
        env = "SECRET_ROTATOR_NOTIFY_URLS",
        value_delimiter = ','
    )]
    pub notify_urls: Vec<String>,
    /// A file with one sink URL per line (blank lines and `#` comments skipped), for example a mounted
    /// Secret: a webhook URL often carries a token, and arguments are visible to whoever may read the pod.
    /// Its sinks come after those of --notify-url.
    #[arg(long, value_name = "FILE", env = "SECRET_ROTATOR_NOTIFY_URLS_FILE")]
    pub notify_urls_file: Option<PathBuf>,
    /// The key of the requests' HMAC-SHA256 signature: the file's bytes, trailing whitespace and newlines
    /// removed, at least 16 (mode 0600, or a Secret mounted 0440 with fsGroup). Required with --notify-url.
    #[arg(long, value_name = "FILE", env = "SECRET_ROTATOR_NOTIFY_HMAC_KEY_FILE")]
    pub notify_hmac_key_file: Option<PathBuf>,
    /// A failing rotation is notified from this many consecutive failed attempts on, then at every further
    /// failed attempt until a rotation succeeds.
    #[arg(
        long,
        default_value_t = 3,
        env = "SECRET_ROTATOR_NOTIFY_FAILURE_THRESHOLD",
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub notify_failure_threshold: u32,
    /// Attempts per notification and sink; between two, an exponential backoff (1 s, 2 s, 4 s, ... at most
    /// 60 s, ±20 %).
    #[arg(
        long,
        default_value_t = 6,
        env = "SECRET_ROTATOR_NOTIFY_MAX_ATTEMPTS",
        value_parser = clap::value_parser!(u32).range(1..=20)
    )]
    pub notify_max_attempts: u32,
    /// Timeout of one attempt, in seconds.
    #[arg(
        long,
        default_value_t = 10,
        env = "SECRET_ROTATOR_NOTIFY_TIMEOUT_SECS",
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub notify_timeout_secs: u64,
    /// Notifications waiting per sink, at most; more are dropped (and counted).
    #[arg(
        long,
        default_value_t = 1024,
        env = "SECRET_ROTATOR_NOTIFY_QUEUE_SIZE",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub notify_queue_size: u32,
    /// An extra PEM CA bundle to trust for https sinks (a private CA).
    #[arg(long, value_name = "FILE", env = "SECRET_ROTATOR_NOTIFY_CA_FILE")]
    pub notify_ca_file: Option<PathBuf>,
}

impl NotifyArgs {
    /// The configuration, with the key (and CA) read; none without a sink.
    pub fn config(&self) -> Result<Option<NotifyConfig>, BoxError> {
        let mut urls: Vec<String> = self
            .notify_urls
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if let Some(path) = &self.notify_urls_file {
            check_private(path, "notification URLs file")?;
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--notify-urls-file {}: {e}", path.display()))?,
            );
            urls.extend(urls_of(&text));
        }
        if urls.is_empty() {
            return Ok(None);
        }
        let path = self.notify_hmac_key_file.as_ref().ok_or(
            "--notify-hmac-key-file is required with --notify-url or --notify-urls-file: every request is signed with it",
        )?;
        check_private(path, "notification HMAC key file")?;
        let mut key = zeroize::Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| format!("--notify-hmac-key-file {}: {e}", path.display()))?,
        );
        let len = key.trim_ascii_end().len();
        key.truncate(len);
        let ca_pem = match &self.notify_ca_file {
            Some(p) => Some(
                std::fs::read(p).map_err(|e| format!("--notify-ca-file {}: {e}", p.display()))?,
            ),
            None => None,
        };
        Ok(Some(NotifyConfig {
            urls,
            key,
            failure_threshold: self.notify_failure_threshold,
            max_attempts: self.notify_max_attempts,
            timeout: Duration::from_secs(self.notify_timeout_secs),
            queue: self.notify_queue_size as usize,
            ca_pem,
        }))
    }
}

/// The sink URLs of a URLs file: one per line, blank lines and `#` comments skipped.
fn urls_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_file_has_one_url_a_line() {
        let urls: Vec<String> = urls_of(
            "# ops\nhttps://hooks.example.com/in?token=t\n\n  http://receiver.ops.svc/e  \n",
        )
        .collect();
        assert_eq!(
            urls,
            [
                "https://hooks.example.com/in?token=t",
                "http://receiver.ops.svc/e"
            ]
        );
    }
}
