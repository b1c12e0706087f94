{{- define "secret-rotator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "secret-rotator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "secret-rotator.labels" -}}
app.kubernetes.io/name: {{ include "secret-rotator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "secret-rotator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secret-rotator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "secret-rotator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "secret-rotator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "secret-rotator.masterKeySecret" -}}
{{- default (printf "%s-master-key" (include "secret-rotator.fullname" .)) .Values.store.embedded.existingMasterKeySecret -}}
{{- end -}}

{{- /* A duration of one unit (90s, 30m, 1h, 2d) in seconds. */ -}}
{{- define "secret-rotator.seconds" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^[0-9]+[smhd]$" $d) -}}
{{- fail (printf "%q is not a duration like 30m, 1h or 2d" $d) -}}
{{- end -}}
{{- $n := regexFind "^[0-9]+" $d -}}
{{- $unit := trimPrefix $n $d -}}
{{- mul (atoi $n) (get (dict "s" 1 "m" 60 "h" 3600 "d" 86400) $unit) -}}
{{- end -}}
