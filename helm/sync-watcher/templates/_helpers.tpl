{{- define "sync-watcher.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sync-watcher.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "sync-watcher.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "sync-watcher.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sync-watcher.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sync-watcher.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sync-watcher.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sync-watcher.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sync-watcher
{{- end -}}

{{- define "sync-watcher.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sync-watcher.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sync-watcher.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "sync-watcher.secretName" -}}
{{- if .Values.secrets.externalSecret.enabled -}}
{{- include "sync-watcher.fullname" . -}}
{{- else -}}
{{- .Values.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* secret key in values -> (setting that reads a file, file name). The daemon reads *_FILE itself. */}}
{{- define "sync-watcher.secretSettings" -}}
argocdToken: WATCHER_ARGOCD__TOKEN_FILE
gitToken: WATCHER_GIT__TOKEN_FILE
gitSshKey: WATCHER_GIT__SSH_KEY_FILE
gitKnownHosts: WATCHER_GIT__SSH_KNOWN_HOSTS_FILE
forgeToken: WATCHER_FORGE__TOKEN_FILE
slackWebhookUrl: WATCHER_SLACK__WEBHOOK_URL_FILE
slackBotToken: WATCHER_SLACK__BOT_TOKEN_FILE
adminToken: WATCHER_HTTP__ADMIN_TOKEN_FILE
revertSigningKey: WATCHER_REVERT__SIGNING_KEY_FILE
{{- end -}}

{{/* The keys of secrets.keys that are provided ("" means not). */}}
{{- define "sync-watcher.providedSecrets" -}}
{{- $out := list -}}
{{- range $name, $key := .Values.secrets.keys -}}
{{- if $key -}}{{- $out = append $out $name -}}{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Where people open the pages: pages.externalUrl, else the Ingress's host; "" when neither is set. */}}
{{- define "sync-watcher.pagesUrl" -}}
{{- if .Values.pages.externalUrl -}}
{{- .Values.pages.externalUrl | trimSuffix "/" -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- printf "https://%s" .Values.ingress.host -}}
{{- end -}}
{{- end -}}
