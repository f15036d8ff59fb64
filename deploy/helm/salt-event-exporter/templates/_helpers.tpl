{{- define "see.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "see.fullname" -}}
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

{{- define "see.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "see.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "see.selectorLabels" -}}
app.kubernetes.io/name: {{ include "see.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Pods the Service scrapes: our own in node mode, the salt-master pods in sidecar mode. */}}
{{- define "see.podSelector" -}}
{{- if eq .Values.mode "sidecar" -}}
{{- if .Values.statefulsetExample.enabled -}}
app.kubernetes.io/name: salt-master
app.kubernetes.io/instance: {{ .Release.Name }}
{{- else -}}
{{ toYaml .Values.sidecar.masterSelector }}
{{- end -}}
{{- else -}}
{{ include "see.selectorLabels" . }}
{{- end -}}
{{- end -}}

{{- define "see.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "see.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The exporter container, shared by node mode, the sidecar snippet and the example StatefulSet. */}}
{{- define "see.container" -}}
name: salt-event-exporter
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
args:
  - --bus={{ .Values.bus }}
  - --web.listen-address=:{{ .Values.port }}
  {{- if .Values.webConfig.enabled }}
  - --web.config.file=/etc/salt-event-exporter/web/web-config.yml
  {{- end }}
  {{- range .Values.extraArgs }}
  - {{ . | quote }}
  {{- end }}
env:
  {{- range $key, $value := .Values.settings }}
  - name: {{ printf "SALT_EXPORTER_%s" ($key | upper | replace "." "_" | replace "-" "_") }}
    value: {{ $value | quote }}
  {{- end }}
  - name: SALT_EXPORTER_MASTER_ID
    {{- if .Values.masterId }}
    value: {{ .Values.masterId | quote }}
    {{- else }}
    valueFrom:
      fieldRef:
        fieldPath: spec.nodeName
    {{- end }}
  {{- if .Values.otlp.endpoint }}
  - name: OTEL_EXPORTER_OTLP_ENDPOINT
    value: {{ .Values.otlp.endpoint | quote }}
  - name: OTEL_EXPORTER_OTLP_PROTOCOL
    value: {{ .Values.otlp.protocol | quote }}
  - name: OTEL_SERVICE_NAME
    value: {{ .Values.otlp.serviceName | quote }}
  {{- if .Values.otlp.resourceAttributes }}
  - name: OTEL_RESOURCE_ATTRIBUTES
    value: {{ .Values.otlp.resourceAttributes | quote }}
  {{- end }}
  {{- if .Values.otlp.sampler }}
  - name: OTEL_TRACES_SAMPLER
    value: {{ .Values.otlp.sampler | quote }}
  - name: OTEL_TRACES_SAMPLER_ARG
    value: {{ .Values.otlp.samplerArg | quote }}
  {{- end }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - name: metrics
    containerPort: {{ .Values.port }}
    protocol: TCP
{{- if .Values.livenessProbe.enabled }}
livenessProbe:
  httpGet:
    path: {{ .Values.livenessProbe.path }}
    port: metrics
    {{- if .Values.webConfig.tls.enabled }}
    scheme: HTTPS
    {{- end }}
  initialDelaySeconds: {{ .Values.livenessProbe.initialDelaySeconds }}
  periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
  timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds }}
  failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
{{- end }}
{{- if .Values.readinessProbe.enabled }}
readinessProbe:
  httpGet:
    path: {{ .Values.readinessProbe.path }}
    port: metrics
    {{- if .Values.webConfig.tls.enabled }}
    scheme: HTTPS
    {{- end }}
  initialDelaySeconds: {{ .Values.readinessProbe.initialDelaySeconds }}
  periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
  timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds }}
  failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
{{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
volumeMounts:
  - name: {{ if eq .Values.mode "sidecar" }}{{ .Values.sidecar.sockVolumeName }}{{ else }}salt-sock{{ end }}
    mountPath: {{ dir .Values.bus }}
    readOnly: true
  {{- if .Values.webConfig.enabled }}
  - name: web-config
    mountPath: /etc/salt-event-exporter/web
    readOnly: true
  {{- end }}
{{- end -}}

{{- define "see.podSecurityContext" -}}
{{- $ctx := deepCopy .Values.podSecurityContext -}}
{{- $_ := set $ctx "supplementalGroups" (list (int .Values.saltGroupId)) -}}
{{- toYaml $ctx -}}
{{- end -}}

{{- define "see.webConfigVolume" -}}
{{- if .Values.webConfig.enabled }}
- name: web-config
  projected:
    sources:
      - secret:
          name: {{ include "see.fullname" . }}-web-config
      {{- if .Values.webConfig.tls.enabled }}
      - secret:
          name: {{ required "webConfig.tls.secretName is required with webConfig.tls.enabled" .Values.webConfig.tls.secretName }}
      {{- end }}
{{- end }}
{{- end -}}
