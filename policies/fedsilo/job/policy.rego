# METADATA
# title: Job admission
# description: |
#   Whether a FederatedJob may run at all, from its spec (input.spec, camelCase as in
#   the manifest). Same decision shape as fedsilo.update.
package fedsilo.job

params := data.fedsilo.params

mode := object.get(input.spec, ["aggregation", "mode"], "masked")

data_class := object.get(input.spec, ["policy", "dataClass"], "internal")

deny contains msg if {
	not mode in params.allowed_aggregation[data_class]
	msg := sprintf("aggregation_not_allowed: %s aggregation is not allowed for %s data", [mode, data_class])
}

deny contains msg if {
	ceiling := input.spec.policy.maxEpsilon
	ceiling > params.organization_max_epsilon
	msg := sprintf("epsilon_above_organization_max: policy.maxEpsilon %.4f is above the organization's maximum %.4f", [ceiling, params.organization_max_epsilon])
}

deny contains msg if {
	data_class == "sensitive"
	not input.spec.policy.maxEpsilon
	object.get(input.spec, ["privacy", "mode"], "none") != "none"
	msg := "epsilon_ceiling_missing: sensitive data with differential privacy needs policy.maxEpsilon"
}

deny contains msg if {
	mode == "masked"
	count(input.spec.silos) < params.masked_min_silos
	msg := sprintf("too_few_silos_for_masking: masked aggregation needs at least %d silos, the job has %d", [params.masked_min_silos, count(input.spec.silos)])
}

default allow := false

allow if count(deny) == 0

decision := {
	"allow": allow,
	"reasons": sort(deny),
	"policy_revision": params.revision,
}
