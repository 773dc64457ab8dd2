{{/*
Helpers of the fedsilo chart. Every name starts with "fedsilo-silo." so that a parent chart
including this one never mixes its helpers with ours.
*/}}

{{/* The chart's name, 63 characters at most (a label value's limit). */}}
{{- define "fedsilo-silo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: objects' names start with it. */}}
{{- define "fedsilo-silo.fullname" -}}
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

{{/* name-version, as the helm.sh/chart label wants it. */}}
{{- define "fedsilo-silo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods; never changed after the first install. */}}
{{- define "fedsilo-silo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fedsilo-silo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object the chart creates. */}}
{{- define "fedsilo-silo.labels" -}}
app.kubernetes.io/name: {{ include "fedsilo-silo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedsilo
helm.sh/chart: {{ include "fedsilo-silo.chart" . }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "fedsilo-silo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fedsilo-silo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: repository:tag, repository@digest, or
repository:tag@digest. Called with (list image-values default-tag).
*/}}
{{- define "fedsilo-silo.image" -}}
{{- $image := index . 0 }}
{{- $tag := default (index . 1) $image.tag }}
{{- $reference := $image.repository }}
{{- if $tag }}{{ $reference = printf "%s:%s" $reference $tag }}{{ end }}
{{- if $image.digest }}{{ $reference = printf "%s@%s" $reference $image.digest }}{{ end }}
{{- $reference }}
{{- end }}

{{/* The Silo's name; the chart refuses to render without one. */}}
{{- define "fedsilo-silo.siloName" -}}
{{- required "silo.name is required: the name FederatedJobs list this silo by, e.g. --set silo.name=hospital-a" .Values.silo.name }}
{{- end }}

{{/* The namespace of the Silo object (and of the jobs it joins). */}}
{{- define "fedsilo-silo.siloNamespace" -}}
{{- default .Release.Namespace .Values.silo.namespace }}
{{- end }}

{{/* The namespace of the silo's identity and pods. */}}
{{- define "fedsilo-silo.workloadNamespace" -}}
{{- default .Release.Namespace .Values.workloadNamespace }}
{{- end }}

{{/* Every namespace the operator watches: the Silo's and the workload namespace. */}}
{{- define "fedsilo-silo.watchedNamespaces" -}}
{{- toJson (list (include "fedsilo-silo.siloNamespace" .) (include "fedsilo-silo.workloadNamespace" .) | uniq) }}
{{- end }}

{{/* Whether replicas coordinate through kopf peering (more than one replica). */}}
{{- define "fedsilo-silo.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/*
The identity Secret's and public ConfigMap's names, as the operator names them (a silo name
of at most 47 characters keeps them whole). An existing Secret must carry the first name.
*/}}
{{- define "fedsilo-silo.identitySecretName" -}}
{{- include "fedsilo-silo.siloName" . }}-identity
{{- end }}

{{- define "fedsilo-silo.identityPublicName" -}}
{{- include "fedsilo-silo.siloName" . }}-identity-public
{{- end }}

{{/* Fails with the fix when identity.existingSecret is set inconsistently. */}}
{{- define "fedsilo-silo.checkIdentity" -}}
{{- with .Values.identity }}
{{- if .existingSecret }}
{{- $expected := include "fedsilo-silo.identitySecretName" $ }}
{{- if ne .existingSecret $expected }}
{{- fail (printf "identity.existingSecret is %q but the operator reads the Secret named %q: create it under that name (kubectl -n %s create secret generic %s --from-file=DIR)" .existingSecret $expected (include "fedsilo-silo.workloadNamespace" $) $expected) }}
{{- end }}
{{- if or (not .publicKey) (not .caCertificate) }}
{{- fail "identity.existingSecret needs identity.publicKey and identity.caCertificate (signing-key.pub and ca.crt from the same `fedsilo identity create` folder): the chart publishes them for the hub" }}
{{- end }}
{{- else if or .publicKey .caCertificate }}
{{- fail "identity.publicKey and identity.caCertificate are used only with identity.existingSecret; without it the operator generates the identity and registers its key itself" }}
{{- end }}
{{- end }}
{{- end }}
