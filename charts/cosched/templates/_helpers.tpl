{{/* Base name of the chart's objects. */}}
{{- define "cosched.name" -}}
{{- required "name must not be empty" .Values.name -}}
{{- end -}}

{{/* Namespace of the chart's objects: namespace.name, else the release namespace. */}}
{{- define "cosched.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name -}}
{{- end -}}

{{/* The ServiceAccount the scheduler runs as. */}}
{{- define "cosched.serviceAccountName" -}}
{{- default (include "cosched.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The scheduler's leader-election Lease. */}}
{{- define "cosched.leaseName" -}}
{{- default (include "cosched.name" .) .Values.leaderElection.resourceName -}}
{{- end -}}

{{/* Labels of every object (those of manifests/). */}}
{{- define "cosched.labels" -}}
app.kubernetes.io/name: {{ include "cosched.name" . }}
{{- end -}}

{{/* Labels and selector of the scheduler pods. */}}
{{- define "cosched.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cosched.name" . }}
app.kubernetes.io/component: scheduler
{{- end -}}

{{/* The RBAC subject: the scheduler's ServiceAccount. */}}
{{- define "cosched.subjects" -}}
subjects:
- kind: ServiceAccount
  name: {{ include "cosched.serviceAccountName" . }}
  namespace: {{ include "cosched.namespace" . }}
{{- end -}}

{{/*
CoschedGang args of one profile: the global gangArgs overridden by the
profile's, without the ones left empty (the scheduler defaults those).
Call with (dict "global" .Values.gangArgs "profile" $profile "path" "profiles.x").
*/}}
{{- define "cosched.gangArgs" -}}
{{- $known := list "permitWaitingTimeSeconds" "podGroupBackoffSeconds" "managePodGroupStatus" "statusLeaseNamespace" "placementStrategy" "gangPreemption" -}}
{{- $merged := dict -}}
{{- range $k, $v := default dict .global -}}
{{- $_ := set $merged $k $v -}}
{{- end -}}
{{- /* A profile's value wins, even 0 or false; null there inherits. */ -}}
{{- range $k, $v := default dict .profile.gangArgs -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $_ := set $merged $k $v -}}
{{- end -}}
{{- end -}}
{{- $args := dict -}}
{{- range $k, $v := $merged -}}
{{- if not (has $k $known) -}}
{{- fail (printf "%s: unknown CoschedGang argument %q (known: %s)" $.path $k (join ", " $known)) -}}
{{- end -}}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "string" $v) (eq $v ""))) -}}
{{- $_ := set $args $k $v -}}
{{- end -}}
{{- end -}}
{{- with $args.placementStrategy -}}
{{- if not (has . (list "Atomic" "MemberByMember")) -}}
{{- fail (printf "%s: placementStrategy must be Atomic or MemberByMember, got %q" $.path .) -}}
{{- end -}}
{{- end -}}
{{- toYaml $args -}}
{{- end -}}

{{/*
One scheduler profile. Call with (dict "name" SCHEDULER_NAME "args" ARGS_YAML).
*/}}
{{- define "cosched.profile" -}}
- schedulerName: {{ .name }}
  plugins:
    # CoschedPreemption replaces DefaultPreemption at every extension point.
    multiPoint:
      disabled:
      - name: DefaultPreemption
    # Gang-aware ordering replaces the default PrioritySort. queueSort must be
    # identical in every profile, so it is a plugin of its own, without args.
    queueSort:
      enabled:
      - name: CoschedQueueSort
      disabled:
      - name: "*"
    preEnqueue:
      enabled:
      - name: CoschedGang
      - name: CoschedPreemption
    preFilter:
      enabled:
      - name: CoschedGang
    filter:
      enabled:
      - name: CoschedGang
    # CoschedGang preempts for groups that cannot be placed; for every other
    # pod CoschedPreemption replaces DefaultPreemption: the same algorithm,
    # but gangs are taken whole or not at all.
    postFilter:
      enabled:
      - name: CoschedGang
      - name: CoschedPreemption
    reserve:
      enabled:
      - name: CoschedGang
    permit:
      enabled:
      - name: CoschedGang
  pluginConfig:
  - name: CoschedGang
    {{- if eq .args "{}" }}
    args: {}
    {{- else }}
    args:
      {{- .args | nindent 6 }}
    {{- end }}
{{- end -}}
