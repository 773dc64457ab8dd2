# METADATA
# title: Job admission
# description: |
#   Whether a FederatedJob may run at all. Input: a fedsilo.job/v1 document
#   (docs/policy-input.md), built from the job's spec. Parameters: data.fedsilo.params.
#   Same decision shape and reason format as fedsilo.update.
package fedsilo.job

import data.fedsilo.lib
import data.fedsilo.params

# Every field a rule reads, with the JSON types it may have (docs/policy-input.md).
fields := [
	[["job", "name"], ["string"]],
	[["job", "aggregation"], ["string"]],
	[["job", "data_class"], ["string"]],
	[["job", "silos"], ["array"]],
	[["job", "max_epsilon"], ["number", "null"]],
	[["job", "privacy", "mode"], ["string"]],
	[["job", "privacy", "target_epsilon"], ["number", "null"]],
]

# The tightest ceiling that applies: the job's own, else the organization's.
ceiling := c if {
	c := input.job.max_epsilon
	is_number(c)
} else := params.organization_max_epsilon

deny contains msg if {
	some msg in lib.schema_reasons(params.job_schema_versions)
}

deny contains msg if {
	some msg in lib.type_reasons(fields)
}

deny contains msg if {
	mode := input.job.aggregation
	data_class := input.job.data_class
	not mode in object.get(params.allowed_aggregation, data_class, [])
	msg := concat("", ["aggregation_not_allowed: ", lib.describe(mode), " aggregation is not allowed for ", lib.describe(data_class), " data"])
}

deny contains msg if {
	is_number(input.job.max_epsilon)
	input.job.max_epsilon > params.organization_max_epsilon
	msg := sprintf("epsilon_above_organization_max: the job's max_epsilon %s is above the organization's maximum %s", [lib.num(input.job.max_epsilon), lib.num(params.organization_max_epsilon)])
}

deny contains msg if {
	is_number(input.job.privacy.target_epsilon)
	input.job.privacy.target_epsilon > ceiling
	msg := sprintf("target_epsilon_above_ceiling: the privacy target epsilon %s is above the ceiling %s", [lib.num(input.job.privacy.target_epsilon), lib.num(ceiling)])
}

deny contains msg if {
	input.job.data_class in params.epsilon_ceiling_required
	input.job.privacy.mode != "none"
	not is_number(lib.field(["job", "max_epsilon"]))
	msg := concat("", ["epsilon_ceiling_missing: ", input.job.data_class, " data under differential privacy needs a max_epsilon"])
}

deny contains msg if {
	input.job.aggregation == "masked"
	is_array(input.job.silos)
	count(input.job.silos) < params.masked_min_silos
	msg := sprintf("too_few_silos_for_masking: masked aggregation needs at least %s silos, the job has %s", [lib.num(params.masked_min_silos), lib.num(count(input.job.silos))])
}

default allow := false

allow if count(deny) == 0

# METADATA
# entrypoint: true
# description: The decision the operator asks for; data.fedsilo.job.decision.
decision := {
	"allow": allow,
	"reasons": sort(deny),
	"policy_revision": params.revision,
}
