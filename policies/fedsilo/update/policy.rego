# METADATA
# title: Update admission
# description: |
#   Numbers in reasons are printed with %.4f (not %v) so that every Rego engine renders
#   them identically.
#   The decision on one signed model update, made before it may enter an aggregate.
#   Input: the fedsilo.update/v1 document (docs/policy-input.md). Every deny carries a
#   reason of the form "<code>: <explanation>" that an auditor can read.
package fedsilo.update

params := data.fedsilo.params

deny contains "signature_invalid: the update's signature does not verify against the silo's registered key" if {
	not input.update.signature_valid
}

deny contains msg if {
	not input.silo.enrolled
	msg := sprintf("silo_not_enrolled: %s is not enrolled in job %s", [input.silo.name, input.job.name])
}

deny contains msg if {
	not input.silo.name in input.job.silos
	input.silo.enrolled
	msg := sprintf("silo_not_in_job: %s is not one of the job's silos", [input.silo.name])
}

deny contains msg if {
	input.update.round != input.job.round
	msg := sprintf("stale_round: the update is for round %d but round %d is open", [input.update.round, input.job.round])
}

deny contains input.update.transport_problem if {
	is_string(input.update.transport_problem)
}

deny contains "nonce_replayed: this nonce was already used by the silo (replayed update)" if {
	input.ledger.nonce_seen
}

deny contains msg if {
	input.update.l2_norm > input.job.norm_cap
	msg := sprintf("norm_cap_exceeded: the update's L2 norm %.4f is above the job's norm cap %.4f", [input.update.l2_norm, input.job.norm_cap])
}

deny contains msg if {
	ceiling := input.job.max_epsilon
	ceiling != null
	input.ledger.epsilon_if_accepted > ceiling
	msg := sprintf("job_epsilon_exceeded: accepting would spend epsilon %.4f, above the job's ceiling %.4f", [input.ledger.epsilon_if_accepted, ceiling])
}

deny contains msg if {
	ceiling := input.silo.max_epsilon
	ceiling != null
	input.ledger.epsilon_lifetime_if_accepted > ceiling
	msg := sprintf("silo_epsilon_exceeded: accepting would spend epsilon %.4f over the silo's lifetime, above its ceiling %.4f", [input.ledger.epsilon_lifetime_if_accepted, ceiling])
}

deny contains msg if {
	not input.job.aggregation in params.allowed_aggregation[input.job.data_class]
	msg := sprintf("aggregation_not_allowed: %s aggregation is not allowed for %s data", [input.job.aggregation, input.job.data_class])
}

deny contains msg if {
	input.update.num_samples < input.job.min_samples
	msg := sprintf("too_few_samples: the update comes from %d records, the job needs at least %d", [input.update.num_samples, input.job.min_samples])
}

default allow := false

allow if count(deny) == 0

decision := {
	"allow": allow,
	"reasons": sort(deny),
	"policy_revision": params.revision,
}
