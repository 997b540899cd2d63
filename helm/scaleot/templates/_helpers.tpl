{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "scaleot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name: the prefix of every object this chart creates. */}}
{{- define "scaleot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "scaleot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scaleot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scaleot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "scaleot.labels" -}}
helm.sh/chart: {{ include "scaleot.chart" . }}
{{ include "scaleot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: scaleot
{{- end -}}

{{- define "scaleot.coordinator.fullname" -}}
{{- printf "%s-coordinator" (include "scaleot.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Deployment name of a worker group: (list $ $group). */}}
{{- define "scaleot.worker.fullname" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- printf "%s-worker-%s" (include "scaleot.fullname" $root) $group.groupName | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Image reference from an override block and the top-level image: (list $ $override). */}}
{{- define "scaleot.image" -}}
{{- $root := index . 0 -}}
{{- $override := index . 1 | default dict -}}
{{- $repository := $override.repository | default $root.Values.image.repository -}}
{{- $digest := $override.digest | default $root.Values.image.digest -}}
{{- if $digest -}}
{{- printf "%s@%s" $repository $digest -}}
{{- else -}}
{{- $tag := $override.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}
{{- end -}}

{{- define "scaleot.imagePullPolicy" -}}
{{- $root := index . 0 -}}
{{- $override := index . 1 | default dict -}}
{{- $override.pullPolicy | default $root.Values.image.pullPolicy -}}
{{- end -}}

{{/* Name the bitnami/redis subchart gives its objects (its common.names.fullname). */}}
{{- define "scaleot.redis.fullname" -}}
{{- if .Values.redis.fullnameOverride -}}
{{- .Values.redis.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "redis" .Values.redis.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "scaleot.redis.host" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-master.%s.svc" (include "scaleot.redis.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- required "externalRedis.host is required when redis.enabled=false" .Values.externalRedis.host -}}
{{- end -}}
{{- end -}}

{{- define "scaleot.redis.port" -}}
{{- if .Values.redis.enabled -}}6379{{- else -}}{{ .Values.externalRedis.port }}{{- end -}}
{{- end -}}

{{/* redis:// URL without credentials; the password travels separately from its Secret. */}}
{{- define "scaleot.redis.url" -}}
{{- $scheme := ternary "rediss" "redis" (and (not .Values.redis.enabled) .Values.externalRedis.tls) -}}
{{- printf "%s://%s:%s" $scheme (include "scaleot.redis.host" .) (include "scaleot.redis.port" .) -}}
{{- end -}}

{{/* Secret name and key of the Redis password; empty name = Redis without a password. */}}
{{- define "scaleot.redis.secretName" -}}
{{- if .Values.redis.enabled -}}
{{- if .Values.redis.auth.enabled -}}
{{- .Values.redis.auth.existingSecret | default (include "scaleot.redis.fullname" .) -}}
{{- end -}}
{{- else -}}
{{- .Values.externalRedis.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "scaleot.redis.secretKey" -}}
{{- if .Values.redis.enabled -}}
{{- .Values.redis.auth.existingSecretPasswordKey | default "redis-password" -}}
{{- else -}}
{{- .Values.externalRedis.existingSecretPasswordKey | default "redis-password" -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every scaleot container: secrets by reference, then common.containerEnv. */}}
{{- define "scaleot.sharedEnv" -}}
{{- $secret := include "scaleot.redis.secretName" . -}}
{{- if $secret }}
- name: SCALEOT_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "scaleot.redis.secretKey" . }}
{{- end }}
{{- if .Values.secrets.curve.existingSecret }}
- name: SCALEOT_CURVE_SERVER_PUBLIC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.curve.existingSecret }}
      key: {{ .Values.secrets.curve.publicKeyKey }}
{{- end }}
{{- with .Values.common.containerEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The claim holding models and artifacts: an existing one, or the one pvc.yaml creates. */}}
{{- define "scaleot.storage.claimName" -}}
{{- .Values.storage.existingClaim | default (printf "%s-storage" (include "scaleot.fullname" .)) -}}
{{- end -}}

{{/* Defaults for worker-group fields a group leaves out (values.yaml spells them out for the first group). */}}
{{- define "scaleot.worker.defaults" -}}
podSecurityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  seccompProfile:
    type: RuntimeDefault
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
lifecycle:
  preStop:
    exec:
      command: ["sleep", "5"]
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}
