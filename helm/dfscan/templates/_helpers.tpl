{{/* Names */}}
{{- define "dfscan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dfscan.fullname" -}}
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

{{- define "dfscan.coordinator.fullname" -}}
{{- printf "%s-coordinator" (include "dfscan.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dfscan.worker.fullname" -}}
{{- printf "%s-worker" (include "dfscan.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dfscan.redis.fullname" -}}
{{- printf "%s-redis" (include "dfscan.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dfscan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dfscan.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels: the common set, and the selector set of one component. */}}
{{- define "dfscan.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "dfscan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dfscan
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Call with (dict "root" $ "component" "worker"). */}}
{{- define "dfscan.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dfscan.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dfscan.componentLabels" -}}
{{ include "dfscan.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Images: (dict "root" $ "image" .Values.worker.image) */}}
{{- define "dfscan.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* The Secret holding redis-password, api-tokens and webhook-secret. */}}
{{- define "dfscan.secretName" -}}
{{- default (include "dfscan.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "dfscan.configMapName" -}}
{{- printf "%s-config" (include "dfscan.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where the config file is mounted, and its path. */}}
{{- define "dfscan.configDir" -}}/etc/dfscan/config{{- end }}
{{- define "dfscan.configFile" -}}{{ include "dfscan.configDir" . }}/dfscan.json{{- end }}

{{/* The model as workers are given it: the checkpoint directory in the
volume, or the hub id. */}}
{{- define "dfscan.modelArg" -}}
{{- if .Values.model.localDir }}
{{- printf "%s/%s" (trimSuffix "/" .Values.model.volume.mountPath) (trimPrefix "/" .Values.model.localDir) | trimSuffix "/" }}
{{- else }}
{{- .Values.model.id }}
{{- end }}
{{- end }}

{{/* The model's name as jobs and `dfscan models` name it (and as its task
stream key has it): a checkpoint directory's name, or the hub id. */}}
{{- define "dfscan.modelName" -}}
{{- if .Values.model.localDir }}
{{- base (trimSuffix "/" .Values.model.localDir) }}
{{- else }}
{{- .Values.model.id }}
{{- end }}
{{- end }}

{{- define "dfscan.keyPrefix" -}}
{{- default "dfscan" .Values.config.queue.key_prefix }}
{{- end }}

{{/* The model's Redis task stream (crates/queue/src/redis/keys.rs:
`{prefix}:tasks:{m:MODEL}`, consumer group `workers`). */}}
{{- define "dfscan.taskStream" -}}
{{- printf "%s:tasks:{m:%s}" (include "dfscan.keyPrefix" .) (include "dfscan.modelName" .) }}
{{- end }}

{{- /* The stream of online (KServe ModelInfer) tasks, drained first. */}}
{{- define "dfscan.onlineStream" -}}
{{- printf "%s:online:{m:%s}" (include "dfscan.keyPrefix" .) (include "dfscan.modelName" .) }}
{{- end }}

{{- define "dfscan.redisHost" -}}
{{- if .Values.redis.internal.enabled }}
{{- include "dfscan.redis.fullname" . }}
{{- else }}
{{- required "redis.host is required unless redis.internal.enabled" .Values.redis.host }}
{{- end }}
{{- end }}

{{- define "dfscan.redisAuth" -}}
{{- if or .Values.redis.internal.enabled .Values.redis.auth }}true{{ end }}
{{- end }}

{{/* The environment that gives a dfscan process its Redis URL: the password
from the Secret, then DFSCAN_REDIS built from it (Kubernetes expands
$(REDIS_PASSWORD) because it is defined earlier in the list). */}}
{{- define "dfscan.redisEnv" -}}
{{- $hostPort := printf "%s:%v/%v" (include "dfscan.redisHost" .) .Values.redis.port .Values.redis.db }}
{{- if include "dfscan.redisAuth" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dfscan.secretName" . }}
      key: redis-password
- name: DFSCAN_REDIS
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s" $hostPort | quote }}
{{- else }}
- name: DFSCAN_REDIS
  value: {{ printf "redis://%s" $hostPort | quote }}
{{- end }}
{{- end }}

{{/* Pod and container security contexts. */}}
{{- define "dfscan.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "dfscan.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* Topology spread constraints with the component's selector filled in:
(dict "root" $ "component" "worker" "constraints" list) */}}
{{- define "dfscan.topologySpread" -}}
{{- $selector := include "dfscan.selectorLabels" (dict "root" .root "component" .component) | fromYaml }}
{{- range .constraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
- {{ toYaml $c | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* The worker's grace period: drain + 15 s unless set, and always more
than the drain. */}}
{{- define "dfscan.worker.terminationGrace" -}}
{{- $drain := int .Values.worker.drainGraceSeconds }}
{{- $grace := .Values.worker.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $grace }}
{{- add $drain 15 }}
{{- else if le (int $grace) $drain }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must exceed worker.drainGraceSeconds (%v): a worker is killed before it finishes its tasks" $grace $drain) }}
{{- else }}
{{- int $grace }}
{{- end }}
{{- end }}

{{- define "dfscan.worker.device" -}}
{{- if .Values.worker.device }}
{{- .Values.worker.device }}
{{- else if gt (int .Values.worker.gpu.count) 0 }}cuda
{{- else }}cpu
{{- end }}
{{- end }}

{{/* NetworkPolicy rules. */}}
{{/* Egress to Redis: the in-chart pod, or (an external host the policy
cannot name) anywhere on the Redis port. */}}
{{- define "dfscan.networkPolicy.redisEgress" -}}
- ports:
    - protocol: TCP
      port: {{ .Values.redis.port }}
  {{- if .Values.redis.internal.enabled }}
  to:
    - podSelector:
        matchLabels:
          {{- include "dfscan.selectorLabels" (dict "root" . "component" "redis") | nindent 10 }}
  {{- end }}
{{- end }}
{{- define "dfscan.networkPolicy.metricsIngress" -}}
{{- if .Values.metrics.enabled }}
- ports:
    {{- range $i := until (int (max (int .Values.worker.gpu.count) 1)) }}
    - protocol: TCP
      port: {{ add $.Values.metrics.port $i }}
    {{- end }}
  {{- with .Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
