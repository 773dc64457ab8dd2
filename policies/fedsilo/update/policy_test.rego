package fedsilo.update_test

import data.fedsilo.update

valid := {
	"schema_version": "fedsilo.update/v1",
	"job": {
		"name": "j", "round": 3, "norm_cap": 5.0, "max_epsilon": 8.0, "aggregation": "masked",
		"data_class": "sensitive", "min_samples": 10, "delta": 1e-5, "silos": ["a", "b", "c"],
	},
	"silo": {"name": "a", "enrolled": true, "max_epsilon": 6.0},
	"update": {
		"signature_valid": true, "round": 3, "nonce": "n1", "l2_norm": 3.0, "num_samples": 100,
		"epsilon_round": 0.2, "payload_digest": "sha256:00", "transport_problem": null,
	},
	"ledger": {
		"nonce_seen": false, "seen_nonces": 2, "epsilon_spent": 1.0, "epsilon_if_accepted": 1.2,
		"epsilon_lifetime_if_accepted": 2.0,
	},
}

reasons_for(doc) := reasons if {
	reasons := update.decision.reasons with input as doc
}

only(doc, code) if {
	reasons := reasons_for(doc)
	count(reasons) == 1
	startswith(reasons[0], code)
}

test_a_valid_update_is_allowed if {
	decision := update.decision with input as valid
	decision.allow
	decision.reasons == []
	decision.policy_revision != ""
}

test_bad_signature_is_denied if only(json.patch(valid, [{"op": "replace", "path": "/update/signature_valid", "value": false}]), "signature_invalid")

test_unenrolled_silo_is_denied if only(json.patch(valid, [{"op": "replace", "path": "/silo/enrolled", "value": false}]), "silo_not_enrolled")

test_silo_outside_the_job_is_denied if only(json.patch(valid, [{"op": "replace", "path": "/silo/name", "value": "z"}]), "silo_not_in_job")

test_stale_round_is_denied if only(json.patch(valid, [{"op": "replace", "path": "/update/round", "value": 2}]), "stale_round")

test_replayed_nonce_is_denied if only(json.patch(valid, [{"op": "replace", "path": "/ledger/nonce_seen", "value": true}]), "nonce_replayed")

test_norm_above_cap_is_denied if only(json.patch(valid, [{"op": "replace", "path": "/update/l2_norm", "value": 5.5}]), "norm_cap_exceeded")

test_job_epsilon_ceiling_is_enforced if only(json.patch(valid, [{"op": "replace", "path": "/ledger/epsilon_if_accepted", "value": 8.5}]), "job_epsilon_exceeded")

test_silo_epsilon_ceiling_is_enforced if only(json.patch(valid, [{"op": "replace", "path": "/ledger/epsilon_lifetime_if_accepted", "value": 6.5}]), "silo_epsilon_exceeded")

test_plain_aggregation_of_sensitive_data_is_denied if only(json.patch(valid, [{"op": "replace", "path": "/job/aggregation", "value": "plain"}]), "aggregation_not_allowed")

test_too_few_samples_are_denied if only(json.patch(valid, [{"op": "replace", "path": "/update/num_samples", "value": 5}]), "too_few_samples")

test_transport_problems_are_denied if only(json.patch(valid, [{"op": "replace", "path": "/update/transport_problem", "value": "payload_digest_mismatch: x"}]), "payload_digest_mismatch")

test_no_ceiling_means_no_epsilon_denial if {
	doc := json.patch(valid, [
		{"op": "replace", "path": "/job/max_epsilon", "value": null},
		{"op": "replace", "path": "/silo/max_epsilon", "value": null},
		{"op": "replace", "path": "/ledger/epsilon_if_accepted", "value": 100},
		{"op": "replace", "path": "/ledger/epsilon_lifetime_if_accepted", "value": 100},
	])
	reasons_for(doc) == []
}

test_every_failed_rule_is_reported if {
	doc := json.patch(valid, [
		{"op": "replace", "path": "/update/l2_norm", "value": 9},
		{"op": "replace", "path": "/update/num_samples", "value": 1},
	])
	count(reasons_for(doc)) == 2
}
