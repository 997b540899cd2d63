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

{{/*
A release-qualified name with a suffix that survives truncation: (list $ "suffix"). The prefix is cut
so that prefix + "-" + suffix fits in 63 characters, so two objects with different suffixes never end
up with the same name however long the release name is.
*/}}
{{- define "scaleot.suffixed" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $room := int (sub 62 (len $suffix)) -}}
{{- printf "%s-%s" (include "scaleot.fullname" $root | trunc $room | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "scaleot.coordinator.fullname" -}}
{{- include "scaleot.suffixed" (list . "coordinator") -}}
{{- end -}}

{{/* Deployment name of a worker group: (list $ $group). groupName is at most 30 characters (schema). */}}
{{- define "scaleot.worker.fullname" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- include "scaleot.suffixed" (list $root (printf "worker-%s" $group.groupName)) -}}
{{- end -}}

{{/* Queues a worker group consumes: its `queues`, default [groupName]. Output: comma-separated. */}}
{{- define "scaleot.worker.queues" -}}
{{- $group := . -}}
{{- $queues := $group.queues | default (list $group.groupName) -}}
{{- join "," $queues -}}
{{- end -}}

{{/* SCALEOT_JOB_ROUTES of the coordinator: kind=queue pairs, then *=defaultQueue. */}}
{{- define "scaleot.jobRoutes" -}}
{{- $pairs := list -}}
{{- range $kind, $queue := .Values.routing.routes -}}
{{- $pairs = append $pairs (printf "%s=%s" $kind $queue) -}}
{{- end -}}
{{- $pairs = append $pairs (printf "*=%s" .Values.routing.defaultQueue) -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Fails the render when a routed queue has no worker group consuming it (its jobs would never run). */}}
{{- define "scaleot.checkRouting" -}}
{{- $consumed := dict -}}
{{- range $group := .Values.workerGroups -}}
{{- range $q := splitList "," (include "scaleot.worker.queues" $group) -}}
{{- $_ := set $consumed $q true -}}
{{- end -}}
{{- end -}}
{{- $routed := values .Values.routing.routes | default list -}}
{{- range $q := append $routed .Values.routing.defaultQueue -}}
{{- if not (hasKey $consumed $q) -}}
{{- fail (printf "routing sends jobs to queue %q but no workerGroups entry consumes it: add it to a group's queues (consumed: %s)" $q (keys $consumed | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
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

{{- define "scaleot.redis.fullname" -}}
{{- include "scaleot.suffixed" (list . "redis") -}}
{{- end -}}

{{- define "scaleot.redis.host" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s.%s.svc" (include "scaleot.redis.fullname" .) .Release.Namespace -}}
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
{{- .Values.redis.auth.existingSecret | default (include "scaleot.redis.fullname" .) -}}
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

{{/* Secret holding the CURVE keypairs: an existing one, or the one the keygen hook Job creates. */}}
{{- define "scaleot.curve.secretName" -}}
{{- .Values.secrets.curve.existingSecret | default (include "scaleot.suffixed" (list . "curve")) -}}
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
{{- if .Values.secrets.curve.enabled }}
- name: SCALEOT_CURVE_SERVER_PUBLIC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "scaleot.curve.secretName" . }}
      key: {{ .Values.secrets.curve.publicKeyKey }}
{{- end }}
{{- with .Values.common.containerEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The claim holding models and artifacts: an existing one, or the one pvc.yaml creates. */}}
{{- define "scaleot.storage.claimName" -}}
{{- .Values.storage.existingClaim | default (include "scaleot.suffixed" (list . "storage")) -}}
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
terminationGracePeriodSeconds: 300
backend: wasm
concurrency: 1
command: ["node", "apps/worker/dist/main.js"]
{{ toYaml (dict "resources" .Values.workerDefaults.resources "topologySpreadConstraints" .Values.workerDefaults.topologySpreadConstraints) }}
{{- end -}}

{{/*
A worker group's field, or its default when the group leaves it out: (list $group $defaults "field").
`hasKey` rather than `| default`, so an explicit 0, false, {} or [] in values is kept as given.
Output: YAML of {"v": value}; read it with `(include ... | fromYaml).v`.
*/}}
{{- define "scaleot.worker.field" -}}
{{- $group := index . 0 -}}
{{- $defaults := index . 1 -}}
{{- $field := index . 2 -}}
{{- if hasKey $group $field -}}
{{- toYaml (dict "v" (index $group $field)) -}}
{{- else -}}
{{- toYaml (dict "v" (index $defaults $field)) -}}
{{- end -}}
{{- end -}}

{{/* Topology spread of a worker group: the given constraints, each selecting the group's own pods. */}}
{{- define "scaleot.worker.topologySpread" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- $constraints := index . 2 -}}
{{- range $c := $constraints }}
- {{- toYaml (omit $c "labelSelector") | nindent 2 }}
  labelSelector:
    {{- if $c.labelSelector }}
    {{- toYaml $c.labelSelector | nindent 4 }}
    {{- else }}
    matchLabels:
      {{- include "scaleot.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: worker
      scaleot.io/worker-group: {{ $group.groupName }}
    {{- end }}
{{- end }}
{{- end -}}
