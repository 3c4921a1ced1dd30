{{/* The name of a release's resource: <release>-<suffix>. */}}
{{- define "parley.name" -}}
{{- printf "%s-%s" .root.Release.Name .suffix | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource of the release (component: the service, or nats, turn...). */}}
{{- define "parley.labels" -}}
app.kubernetes.io/name: parley
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: parley
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The labels a component's pods are selected by. */}}
{{- define "parley.selector" -}}
app.kubernetes.io/name: parley
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* A service's image: <registry>/parley-<service>:<tag>. */}}
{{- define "parley.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s/parley-%s:%s" (trimSuffix "/" .root.Values.image.registry) .name $tag -}}
{{- end -}}

{{/* The NATS URL the services connect to: the release's NATS, or nats.url. */}}
{{- define "parley.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- $name := ternary .Release.Name (printf "%s-nats" .Release.Name) (contains "nats" .Release.Name) -}}
{{- printf "nats://%s:4222" ($name | trunc 63 | trimSuffix "-") -}}
{{- else -}}
{{- .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* The Secret made from values (sandbox only), when any secret is given as a value. */}}
{{- define "parley.valuesSecret" -}}
{{- include "parley.name" (dict "root" . "suffix" "secrets") -}}
{{- end -}}

{{/*
Where a secret comes from: {"name": Secret, "key": key}. An existing Secret when named,
else the Secret made from values (sandbox only; the checks in _checks.tpl refuse the rest).
Arguments: root, existing (the Secret's name or ""), key, valuesKey (its key in the values
Secret).
*/}}
{{- define "parley.secretRef" -}}
{{- if .existing -}}
name: {{ .existing }}
key: {{ .key }}
{{- else -}}
name: {{ include "parley.valuesSecret" .root }}
key: {{ .valuesKey }}
{{- end -}}
{{- end -}}

{{/* The TURN URLs the calls service hands out (PARLEY_TURN_URLS). */}}
{{- define "parley.turnUrls" -}}
{{- $host := .Values.turn.host | default .Values.host -}}
{{- printf "turn:%s:%d?transport=udp,turn:%s:%d?transport=tcp" $host (int .Values.turn.port) $host (int .Values.turn.port) -}}
{{- end -}}

{{/* The environment of a service's container that is not in its ConfigMap: secrets and
the pod's own addresses. Arguments: root, name, svc. */}}
{{- define "parley.secretEnv" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- if .svc.database }}
- name: PARLEY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- include "parley.secretRef" (dict "root" $root "existing" $v.database.existingSecret "key" $v.database.key "valuesKey" "database-url") | nindent 6 }}
{{- end }}
{{- if .svc.masterKey }}
- name: PARLEY_AUTH_MASTER_KEY
  valueFrom:
    secretKeyRef:
      {{- include "parley.secretRef" (dict "root" $root "existing" $v.masterKey.existingSecret "key" $v.masterKey.key "valuesKey" "master-key") | nindent 6 }}
{{- end }}
{{- if and (eq .name "calls") $v.turn.enabled }}
- name: PARLEY_TURN_SECRET
  valueFrom:
    secretKeyRef:
      {{- include "parley.secretRef" (dict "root" $root "existing" $v.turn.existingSecret "key" $v.turn.key "valuesKey" "turn-secret") | nindent 6 }}
{{- end }}
{{- if and (eq .name "sip") $v.trunk.host (or $v.trunk.existingSecret $v.trunk.username $v.trunk.password) }}
- name: PARLEY_SIP_TRUNK_USERNAME
  valueFrom:
    secretKeyRef:
      {{- include "parley.secretRef" (dict "root" $root "existing" $v.trunk.existingSecret "key" $v.trunk.usernameKey "valuesKey" "trunk-username") | nindent 6 }}
- name: PARLEY_SIP_TRUNK_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "parley.secretRef" (dict "root" $root "existing" $v.trunk.existingSecret "key" $v.trunk.passwordKey "valuesKey" "trunk-password") | nindent 6 }}
{{- end }}
{{- with .svc.media }}
{{- if .iceAddressesEnv }}
- name: {{ .iceAddressesEnv }}
{{- if .iceAddresses }}
  value: {{ .iceAddresses | quote }}
{{- else }}
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end }}
{{- end }}
{{- if .publicAddressEnv }}
- name: {{ .publicAddressEnv }}
{{- if .publicAddress }}
  value: {{ .publicAddress | quote }}
{{- else }}
  valueFrom:
    fieldRef:
      fieldPath: {{ ternary "status.hostIP" "status.podIP" (.hostNetwork | default false) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A service's PARLEY_* variables (its ConfigMap), as YAML: what the chart derives, under
commonEnv, under the service's own env. Arguments: root, name, svc. */}}
{{- define "parley.env" -}}
{{- $v := .root.Values -}}
{{- $derived := dict
  "PARLEY_ENVIRONMENT" $v.environment
  "PARLEY_NATS_URL" (include "parley.natsUrl" .root)
  "PARLEY_HEALTH_HOST" "0.0.0.0"
  "PARLEY_HEALTH_PORT" (.svc.healthPort | default $v.healthPort)
-}}
{{- if .svc.publicPort }}{{ $_ := set $derived .svc.publicPortEnv .svc.publicPort }}{{ end }}
{{- if and (eq .name "calls") $v.turn.enabled }}
{{- $_ := set $derived "PARLEY_TURN_URLS" (include "parley.turnUrls" .root) }}
{{- end }}
{{- if eq .name "sip" }}
{{- if $v.trunk.host }}
{{- $_ := set $derived "PARLEY_SIP_TRUNK_HOST" $v.trunk.host }}
{{- $_ := set $derived "PARLEY_SIP_TRUNK_PORT" $v.trunk.port }}
{{- $_ := set $derived "PARLEY_SIP_TRUNK_TRANSPORT" $v.trunk.transport }}
{{- $_ := set $derived "PARLEY_SIP_TRUNK_REALM" $v.trunk.realm }}
{{- end }}
{{- if $v.trunk.callerId }}{{ $_ := set $derived "PARLEY_SIP_CALLER_ID" $v.trunk.callerId }}{{ end }}
{{- if $v.trunk.callerIdRules }}{{ $_ := set $derived "PARLEY_SIP_CALLER_ID_RULES" $v.trunk.callerIdRules }}{{ end }}
{{- end }}
{{- $env := merge (deepCopy (.svc.env | default dict)) (deepCopy ($v.commonEnv | default dict)) $derived -}}
{{- range $key := keys $env | sortAlpha }}
{{ $key }}: {{ get $env $key | toString | quote }}
{{- end }}
{{- end -}}
