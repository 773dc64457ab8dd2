{{/*
Helpers of the fedsilo chart. Every name starts with "fedsilo." so that a parent chart
including this one never mixes its helpers with ours.
*/}}

{{/* The chart's name, 63 characters at most (a label value's limit). */}}
{{- define "fedsilo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: objects' names start with it. */}}
{{- define "fedsilo.fullname" -}}
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
{{- define "fedsilo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods; never changed after the first install. */}}
{{- define "fedsilo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fedsilo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object the chart creates. */}}
{{- define "fedsilo.labels" -}}
app.kubernetes.io/name: {{ include "fedsilo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedsilo
helm.sh/chart: {{ include "fedsilo.chart" . }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "fedsilo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fedsilo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: repository:tag, repository@digest, or
repository:tag@digest. Called with (list image-values default-tag).
*/}}
{{- define "fedsilo.image" -}}
{{- $image := index . 0 }}
{{- $tag := default (index . 1) $image.tag }}
{{- $reference := $image.repository }}
{{- if $tag }}{{ $reference = printf "%s:%s" $reference $tag }}{{ end }}
{{- if $image.digest }}{{ $reference = printf "%s@%s" $reference $image.digest }}{{ end }}
{{- $reference }}
{{- end }}

{{/* The namespaces where FederatedJobs and Silos live: the listed ones, or the release's. */}}
{{- define "fedsilo.hubNamespaces" -}}
{{- $namespaces := .Values.namespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $namespaces) }}
{{- end }}

{{/* The silos' workload namespaces the operator serves (role "both" only). */}}
{{- define "fedsilo.siloNamespaces" -}}
{{- if eq .Values.role "both" }}
{{- if not .Values.siloNamespaces }}
{{- fail "role \"both\" needs siloNamespaces: the silos' workload namespaces, where the operator creates identities and silo pods (list a hub namespace too if its Silos carry no fedsilo.io/workload-namespace annotation)" }}
{{- end }}
{{- toJson (uniq .Values.siloNamespaces) }}
{{- else }}
{{- toJson (list) }}
{{- end }}
{{- end }}

{{/* Every namespace the operator watches, in a stable order. */}}
{{- define "fedsilo.watchedNamespaces" -}}
{{- $hub := include "fedsilo.hubNamespaces" . | fromJsonArray }}
{{- $silo := include "fedsilo.siloNamespaces" . | fromJsonArray }}
{{- toJson (concat $hub $silo | uniq) }}
{{- end }}

{{/* Whether replicas coordinate through kopf peering (more than one replica). */}}
{{- define "fedsilo.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* The kopf peering object's name, as the operator derives it from its role. */}}
{{- define "fedsilo.peeringName" -}}
fedsilo-{{ .Values.role }}
{{- end }}

{{/* Whether any job-admission parameter is set (then the chart renders them for the operator). */}}
{{- define "fedsilo.policyParameters" -}}
{{- $set := dict }}
{{- with .Values.policy }}
{{- if not (kindIs "invalid" .maxEpsilon) }}{{ $_ := set $set "organization_max_epsilon" .maxEpsilon }}{{ end }}
{{- if not (kindIs "invalid" .minSilosForMasking) }}{{ $_ := set $set "masked_min_silos" .minSilosForMasking }}{{ end }}
{{- if not (kindIs "invalid" .allowedAggregation) }}{{ $_ := set $set "allowed_aggregation" .allowedAggregation }}{{ end }}
{{- if not (kindIs "invalid" .epsilonCeilingRequired) }}{{ $_ := set $set "epsilon_ceiling_required" .epsilonCeilingRequired }}{{ end }}
{{- end }}
{{- if $set }}{{ toPrettyJson $set }}{{ end }}
{{- end }}
