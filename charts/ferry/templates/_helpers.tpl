{{/*
Helpers shared by Ferry's templates.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "ferry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: fullnameOverride, else the release name (plus "-ferry" unless
it already contains the chart name). Truncated to 40 characters so the longest derived name
("<fullname>-config-br-defaults") stays within 63.
*/}}
{{- define "ferry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ferry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "ferry.labels" -}}
helm.sh/chart: {{ include "ferry.chart" . }}
{{ include "ferry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferry
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component's objects: (dict "ctx" $ "component" "operator"). */}}
{{- define "ferry.componentLabels" -}}
{{ include "ferry.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "ferry.componentSelectorLabels" -}}
{{ include "ferry.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* A component's image reference: (dict "ctx" $ "image" .Values.operator.image). */}}
{{- define "ferry.image" -}}
{{- $g := .ctx.Values.image -}}
{{- $repo := .image.repository -}}
{{- if $g.registry -}}
{{- $repo = printf "%s/%s" $g.registry $repo -}}
{{- end -}}
{{- if $g.digest -}}
{{- printf "%s@%s" $repo $g.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default $g.tag | default .ctx.Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{- define "ferry.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Object names. */}}
{{- define "ferry.operator.fullname" -}}{{ include "ferry.fullname" . }}-operator{{- end -}}
{{- define "ferry.ingress.fullname" -}}{{ include "ferry.fullname" . }}-dispatcher-ingress{{- end -}}
{{- define "ferry.egress.fullname" -}}{{ include "ferry.fullname" . }}-dispatcher-egress{{- end -}}
{{- define "ferry.dispatcherAdmin.fullname" -}}{{ include "ferry.fullname" . }}-dispatcher-admin{{- end -}}
{{- define "ferry.broker.fullname" -}}{{ include "ferry.fullname" . }}-broker{{- end -}}
{{- define "ferry.contract.name" -}}{{ include "ferry.fullname" . }}-contract{{- end -}}
{{- define "ferry.ingressContract.name" -}}{{ include "ferry.fullname" . }}-contract-ingress{{- end -}}
{{- define "ferry.brDefaults.name" -}}{{ include "ferry.fullname" . }}-config-br-defaults{{- end -}}
{{- define "ferry.autoscaler.name" -}}{{ include "ferry.fullname" . }}-config-autoscaler{{- end -}}
{{- define "ferry.domain.name" -}}{{ include "ferry.fullname" . }}-config-domain{{- end -}}
{{- define "ferry.external.fullname" -}}{{ include "ferry.fullname" . }}-external{{- end -}}
{{- define "ferry.features.name" -}}{{ include "ferry.fullname" . }}-config-features{{- end -}}
{{- define "ferry.observability.name" -}}{{ include "ferry.fullname" . }}-config-observability{{- end -}}
{{- /*
The embedded broker is configured by flags, not by the contract: it gets config.observability's
tracing keys as the standard OTEL_* variables (a change rolls its pod).
*/}}
{{- define "ferry.broker.otelEnv" -}}
{{- $o := .Values.config.observability }}
{{- $protocol := get $o "tracing-protocol" | default "none" | lower }}
{{- if ne $protocol "none" }}
- name: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
  value: {{ $protocol | quote }}
- name: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  value: {{ get $o "tracing-endpoint" | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ get $o "tracing-sampling-rate" | default "0" | toString | quote }}
{{- end }}
{{- end -}}
{{- define "ferry.leaseName" -}}{{ .Values.operator.leaderElection.leaseName | default (include "ferry.operator.fullname" .) }}{{- end -}}

{{- define "ferry.operator.serviceAccountName" -}}
{{- .Values.operator.serviceAccount.name | default (include "ferry.operator.fullname" .) -}}
{{- end -}}
{{/* The ServiceAccount of one dispatcher role: (dict "ctx" $ "role" "ingress"|"egress"). Each
role has its own, so that each may read only its own contract Secret. */}}
{{- define "ferry.dispatcher.serviceAccountName" -}}
{{- $base := .ctx.Values.dispatcher.serviceAccount.name | default (printf "%s-dispatcher" (include "ferry.fullname" .ctx)) -}}
{{- if eq .role "ingress" }}{{ $base }}-ingress{{ else }}{{ $base }}{{ end -}}
{{- end -}}
{{/* The contract Secret of one dispatcher role: (dict "ctx" $ "role" ...). Ingress pods get the
ingress contract: no KafkaSource credentials. */}}
{{- define "ferry.dispatcher.contractName" -}}
{{- include (ternary "ferry.ingressContract.name" "ferry.contract.name" (eq .role "ingress")) .ctx -}}
{{- end -}}
{{- define "ferry.broker.serviceAccountName" -}}
{{- .Values.broker.serviceAccount.name | default (include "ferry.broker.fullname" .) -}}
{{- end -}}

{{/* "true" when the chart runs the embedded log (kafka.bootstrapServers is empty). */}}
{{- define "ferry.embeddedBroker" -}}
{{- if not .Values.kafka.bootstrapServers -}}true{{- end -}}
{{- end -}}

{{/* "true" when the embedded log requires SASL (broker.auth.enabled). */}}
{{- define "ferry.broker.auth" -}}
{{- if and (include "ferry.embeddedBroker" .) .Values.broker.auth.enabled -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the embedded log's credentials. */}}
{{- define "ferry.broker.credentials" -}}
{{- .Values.broker.auth.existingSecret | default (printf "%s-broker-credentials" (include "ferry.fullname" .)) -}}
{{- end -}}

{{/* The bootstrap servers every Kafka client of the chart uses. */}}
{{- define "ferry.bootstrapServers" -}}
{{- if include "ferry.embeddedBroker" . -}}
{{- printf "%s.%s.svc.%s:9092" (include "ferry.broker.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* The ingress base URL (Broker addresses are <this>/<namespace>/<broker>). */}}
{{- define "ferry.ingressUrl" -}}
{{- $port := int .Values.dispatcher.ingress.service.port -}}
{{- $host := printf "%s.%s.svc.%s" (include "ferry.ingress.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- if eq $port 80 -}}
{{- printf "http://%s" $host -}}
{{- else -}}
{{- printf "http://%s:%d" $host $port -}}
{{- end -}}
{{- end -}}

{{/* Kafka security.protocol from the SASL and TLS values. */}}
{{/* The Secret holding the CA Ferry's clients trust for the log: kafka.tls.secretName with an
external Kafka, broker.tls.secretName for the embedded log; "" for plaintext. */}}
{{- define "ferry.kafka.tlsSecret" -}}
{{- if .Values.kafka.tls.secretName -}}{{ .Values.kafka.tls.secretName }}
{{- else if include "ferry.embeddedBroker" . -}}{{ .Values.broker.tls.secretName }}
{{- end -}}
{{- end -}}

{{- define "ferry.kafka.securityProtocol" -}}
{{- $sasl := or .Values.kafka.sasl.secretName (include "ferry.broker.auth" .) -}}
{{- $tls := include "ferry.kafka.tlsSecret" . -}}
{{- if and $sasl $tls -}}SASL_SSL
{{- else if $sasl -}}SASL_PLAINTEXT
{{- else if $tls -}}SSL
{{- else -}}PLAINTEXT
{{- end -}}
{{- end -}}

{{/*
Environment of every Kafka client (operator, dispatcher): where the log is and how to
authenticate. Secrets are referenced, never copied.
*/}}
{{- define "ferry.kafka.env" -}}
- name: FERRY_KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "ferry.bootstrapServers" . | quote }}
- name: FERRY_KAFKA_SECURITY_PROTOCOL
  value: {{ include "ferry.kafka.securityProtocol" . | quote }}
{{- if include "ferry.broker.auth" . }}
- name: FERRY_KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: FERRY_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "ferry.broker.credentials" . | quote }}
      key: username
- name: FERRY_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ferry.broker.credentials" . | quote }}
      key: password
{{- end }}
{{- with .Values.kafka.sasl }}
{{- if .secretName }}
- name: FERRY_KAFKA_SASL_MECHANISM
  value: {{ .mechanism | quote }}
- name: FERRY_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .secretName | quote }}
      key: {{ .usernameKey | quote }}
- name: FERRY_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secretName | quote }}
      key: {{ .passwordKey | quote }}
{{- end }}
{{- end }}
{{- if include "ferry.kafka.tlsSecret" . }}
{{- $caKey := ternary .Values.kafka.tls.caKey .Values.broker.tls.caKey (not (empty .Values.kafka.tls.secretName)) }}
- name: FERRY_KAFKA_TLS_CA_FILE
  value: {{ printf "/etc/ferry/kafka-tls/%s" $caKey | quote }}
{{- end }}
{{- with .Values.kafka.tls }}
{{- if .secretName }}
{{- if .certKey }}
- name: FERRY_KAFKA_TLS_CERT_FILE
  value: {{ printf "/etc/ferry/kafka-tls/%s" .certKey | quote }}
{{- end }}
{{- if .keyKey }}
- name: FERRY_KAFKA_TLS_KEY_FILE
  value: {{ printf "/etc/ferry/kafka-tls/%s" .keyKey | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The TLS Secret's volume (a list item), when kafka.tls.secretName is set. */}}
{{- define "ferry.kafka.volumes" -}}
{{- with include "ferry.kafka.tlsSecret" . }}
- name: kafka-tls
  secret:
    secretName: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "ferry.kafka.volumeMounts" -}}
{{- if include "ferry.kafka.tlsSecret" . }}
- name: kafka-tls
  mountPath: /etc/ferry/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level securityContext of every pod. */}}
{{- define "ferry.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ int .Values.securityContext.runAsUser }}
  runAsGroup: {{ int .Values.securityContext.runAsGroup }}
  fsGroup: {{ int .Values.securityContext.fsGroup }}
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* Container-level securityContext of every container. */}}
{{- define "ferry.containerSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ int .Values.securityContext.runAsUser }}
  runAsGroup: {{ int .Values.securityContext.runAsGroup }}
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  privileged: false
  capabilities:
    drop:
      - ALL
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* Scheduling fields shared by the pod templates: pass the component's values. */}}
{{- define "ferry.scheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Cross-field checks the schema cannot express with a clear message. Included by every
template so `helm template` of any subset fails the same way.
*/}}
{{- define "ferry.validate" -}}
{{- $k := .Values.kafka -}}
{{- if and (not $k.bootstrapServers) $k.sasl.secretName -}}
{{- fail "kafka.sasl.secretName is set but kafka.bootstrapServers is empty: the embedded log has no SASL. Set kafka.bootstrapServers to your Kafka cluster, or unset kafka.sasl.secretName." -}}
{{- end -}}
{{- if and (not $k.bootstrapServers) $k.tls.secretName -}}
{{- fail "kafka.tls.secretName is set but kafka.bootstrapServers is empty: the embedded log has no TLS. Set kafka.bootstrapServers to your Kafka cluster, or unset kafka.tls.secretName." -}}
{{- end -}}
{{- if and $k.tls.secretName (or (and $k.tls.certKey (not $k.tls.keyKey)) (and $k.tls.keyKey (not $k.tls.certKey))) -}}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey go together (mutual TLS needs both the client certificate and its key): set both or neither." -}}
{{- end -}}
{{- $a := .Values.config.autoscaler -}}
{{- if and (eq (int (index $a "initial-scale")) 0) (ne (toString (index $a "allow-zero-initial-scale")) "true") -}}
{{- fail "config.autoscaler.initial-scale is 0 but config.autoscaler.allow-zero-initial-scale is false: set initial-scale to 1 or more, or allow-zero-initial-scale to true." -}}
{{- end -}}
{{- if and (gt (int (index $a "max-scale")) 0) (gt (int (index $a "min-scale")) (int (index $a "max-scale"))) -}}
{{- fail "config.autoscaler.min-scale is above config.autoscaler.max-scale: make min-scale at most max-scale, or set max-scale to 0 (unbounded)." -}}
{{- end -}}
{{- end -}}
