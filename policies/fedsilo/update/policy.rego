# METADATA
# title: Update admission
# description: |
#   The decision on one signed model update, made before it may enter an aggregate.
#   Input: a fedsilo.update/v1 document (docs/policy-input.md). Parameters: data.fedsilo.params.
#   Every failed rule adds one reason "<code>: <explanation>": the code is stable and
#   machine-readable, the explanation is for the auditor. A required field that is missing
#   or null, or of the wrong type, denies the update (input_invalid): the gate fails closed.
package fedsilo.update

import data.fedsilo.lib
import data.fedsilo.params

# Every field a rule reads, with the JSON types it may have (docs/policy-input.md).
fields := [
	[["job", "name"], ["string"]],
	[["job", "round"], ["number"]],
	[["job", "norm_cap"], ["number"]],
	[["job", "max_epsilon"], ["number", "null"]],
	[["job", "aggregation"], ["string"]],
	[["job", "data_class"], ["string"]],
	[["job", "min_samples"], ["number", "null"]],
	[["job", "silos"], ["array"]],
	[["job", "max_anomaly_score"], ["number", "null"]],
	[["silo", "name"], ["string"]],
	[["silo", "enrolled"], ["boolean"]],
	[["silo", "max_epsilon"], ["number", "null"]],
	[["silo", "anomaly_score"], ["number", "null"]],
	[["update", "signature_valid"], ["boolean"]],
	[["update", "round"], ["number"]],
	[["update", "l2_norm"], ["number"]],
	[["update", "num_samples"], ["number"]],
	[["update", "epsilon_round"], ["number", "null"]],
	[["update", "payload_digest"], ["string"]],
	[["update", "transport_problem"], ["string", "null"]],
	[["ledger", "nonce_seen"], ["boolean"]],
	[["ledger", "epsilon_if_accepted"], ["number", "null"]],
	[["ledger", "epsilon_lifetime_if_accepted"], ["number", "null"]],
]

# The job's minimum, or the organization's default when the job sets none.
min_samples := n if {
	n := input.job.min_samples
	is_number(n)
} else := params.min_samples_default

# The silo's lifetime spend if the ledger tracks it across jobs; otherwise this job's spend,
# which is a lower bound of it.
silo_epsilon_if_accepted := e if {
	e := input.ledger.epsilon_lifetime_if_accepted
	is_number(e)
} else := lib.field(["ledger", "epsilon_if_accepted"])

# The codes the hub's own admission steps put in update.transport_problem, before the policy
# (fedsilo.policy.Reason; docs/policy-input.md lists each one and the step that finds it).
hub_reasons := {
	"ciphertext_malformed",
	"ciphertext_replayed",
	"ciphertext_wrong_key",
	"claim_mismatch",
	"compression_mismatch",
	"epsilon_claim_mismatch",
	"identity_mismatch",
	"key_retired",
	"noise_below_configured",
	"not_a_survivor",
	"num_samples_inconsistent",
	"payload_digest_mismatch",
	"payload_invalid",
	"privacy_mechanism_invalid",
	"privacy_mechanism_mismatch",
	"privacy_mechanism_missing",
	"round_already_charged",
	"round_closed",
	"shape_mismatch",
	"silo_suspended",
	"subset_mismatch",
	"update_incompatible",
	"upload_busy",
	"wrong_job",
}

# A transport problem the hub phrased as one of its reasons passes through unchanged;
# any other text is wrapped, so every reason's code is one the hub and the docs know.
transport_reason(problem) := problem if {
	regex.match(`^[a-z][a-z0-9_]*: `, problem)
	split(problem, ":")[0] in hub_reasons
} else := concat("", ["transport_problem: ", problem])

deny contains msg if {
	some msg in lib.schema_reasons(params.update_schema_versions)
}

deny contains msg if {
	some msg in lib.type_reasons(fields)
}

deny contains "signature_invalid: the update's signature does not verify against the silo's registered key" if {
	input.update.signature_valid != true
}

deny contains msg if {
	input.silo.enrolled != true
	msg := concat("", ["silo_not_enrolled: silo ", lib.describe(lib.field(["silo", "name"])), " has no registered identity in job ", lib.describe(lib.field(["job", "name"]))])
}

deny contains msg if {
	input.silo.enrolled == true
	is_array(input.job.silos)
	not input.silo.name in input.job.silos
	msg := concat("", ["silo_not_in_job: silo ", lib.describe(input.silo.name), " is not one of the silos of job ", lib.describe(lib.field(["job", "name"]))])
}

deny contains msg if {
	claimed := input.update.round
	open := input.job.round
	is_number(claimed)
	is_number(open)
	claimed != open
	msg := sprintf("stale_round: the update is for round %s but round %s is open", [lib.num(claimed), lib.num(open)])
}

deny contains "nonce_replayed: the silo already used this nonce; the update is a replay" if {
	input.ledger.nonce_seen != false
}

deny contains reason if {
	problem := input.update.transport_problem
	is_string(problem)
	reason := transport_reason(problem)
}

# The wire format types a silo's claims but does not bound them; a negative claim is a lie.
deny contains msg if {
	some name in ["l2_norm", "num_samples", "epsilon_round"]
	value := input.update[name]
	is_number(value)
	value < 0
	msg := sprintf("claim_out_of_range: update.%s is %s, below zero", [name, lib.num(value)])
}

deny contains msg if {
	is_number(input.update.l2_norm)
	is_number(input.job.norm_cap)
	input.update.l2_norm > input.job.norm_cap
	msg := sprintf("norm_cap_exceeded: the update's L2 norm %s is above the job's norm cap %s", [lib.num(input.update.l2_norm), lib.num(input.job.norm_cap)])
}

deny contains msg if {
	ceiling := input.job.max_epsilon
	is_number(ceiling)
	spent := input.ledger.epsilon_if_accepted
	is_number(spent)
	spent > ceiling
	msg := sprintf("job_epsilon_exceeded: accepting would bring the silo's epsilon in this job to %s, above the job's ceiling %s", [lib.num(spent), lib.num(ceiling)])
}

deny contains msg if {
	ceiling := input.silo.max_epsilon
	is_number(ceiling)
	spent := silo_epsilon_if_accepted
	is_number(spent)
	spent > ceiling
	msg := sprintf("silo_epsilon_exceeded: accepting would bring the silo's epsilon to %s, above the silo's own ceiling %s", [lib.num(spent), lib.num(ceiling)])
}

deny contains msg if {
	ceiling := input.job.max_epsilon
	is_number(ceiling)
	not is_number(lib.field(["ledger", "epsilon_if_accepted"]))
	msg := sprintf("epsilon_unaccounted: the job caps epsilon at %s but the ledger gives no epsilon_if_accepted for this update", [lib.num(ceiling)])
}

deny contains msg if {
	ceiling := input.silo.max_epsilon
	is_number(ceiling)
	not is_number(silo_epsilon_if_accepted)
	msg := sprintf("epsilon_unaccounted: the silo caps epsilon at %s but the ledger gives no epsilon_if_accepted for this update", [lib.num(ceiling)])
}

deny contains msg if {
	mode := input.job.aggregation
	data_class := input.job.data_class
	not mode in object.get(params.allowed_aggregation, data_class, [])
	msg := concat("", ["aggregation_not_allowed: ", lib.describe(mode), " aggregation is not allowed for ", lib.describe(data_class), " data"])
}

deny contains msg if {
	is_number(input.update.num_samples)
	input.update.num_samples < min_samples
	msg := sprintf("too_few_samples: the update comes from %s records, the job needs at least %s", [lib.num(input.update.num_samples), lib.num(min_samples)])
}

# A silo whose past updates sat far from the others' (docs/robustness.md) sends no more
# until its score fades; a job without a limit only reports the scores.
deny contains msg if {
	limit := input.job.max_anomaly_score
	score := input.silo.anomaly_score
	is_number(limit)
	is_number(score)
	score > limit
	msg := sprintf("update_anomalous: silo %s has anomaly score %s, above the job's limit %s", [lib.describe(input.silo.name), lib.num(score), lib.num(limit)])
}

default allow := false

allow if count(deny) == 0

# METADATA
# entrypoint: true
# description: The decision the aggregator asks for; data.fedsilo.update.decision.
decision := {
	"allow": allow,
	"reasons": sort(deny),
	"policy_revision": params.revision,
}
