{{/*
Names and labels shared by every template.
*/}}

{{- define "wattsched.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object-name prefix: "<release>-wattsched", or just the release name when it already
says wattsched (so `helm install wattsched ...` gives "wattsched", not "wattsched-wattsched").
*/}}
{{- define "wattsched.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wattsched.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wattsched.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wattsched.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "wattsched.labels" -}}
helm.sh/chart: {{ include "wattsched.chart" . }}
{{ include "wattsched.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wattsched
{{- end }}

{{- define "wattsched.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wattsched.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "wattsched.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The flags of `wattsched run` (the image's entrypoint). $(VAR) is expanded by the kubelet.
*/}}
{{- define "wattsched.args" -}}
- --scheduler-name={{ .Values.schedulerName }}
- --metrics-port={{ .Values.metrics.port }}
- --bind-address=0.0.0.0
- --lease-name={{ .Values.leaderElection.leaseName }}
- --lease-namespace=$(POD_NAMESPACE)
- --lease-duration-seconds={{ .Values.leaderElection.leaseDurationSeconds }}
- --identity=$(POD_NAME)
- --log-format={{ .Values.logging.format }}
- --log-level={{ .Values.logging.level }}
- --status-interval-seconds={{ .Values.statusIntervalSeconds }}
{{- if .Values.allowUnguardedNodes }}
- --allow-unguarded-nodes
{{- end }}
{{- if .Values.prometheus.url }}
- --prometheus-url={{ .Values.prometheus.url }}
- --telemetry-interval-seconds={{ .Values.prometheus.intervalSeconds }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
