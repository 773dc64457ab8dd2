package fedsilo.update_test

import data.fedsilo.update

valid := {
	"schema_version": "fedsilo.update/v1",
	"job": {
		"name": "j",
		"round": 3,
		"norm_cap": 5.0,
		"max_epsilon": 8.0,
		"aggregation": "masked",
		"data_class": "sensitive",
		"min_samples": 10,
		"delta": 1e-5,
		"silos": ["a", "b", "c"],
		"max_anomaly_score": 5.0,
	},
	"silo": {"name": "a", "enrolled": true, "max_epsilon": 6.0, "anomaly_score": 1.5},
	"update": {
		"signature_valid": true,
		"round": 3,
		"nonce": "n1",
		"l2_norm": 3.0,
		"num_samples": 100,
		"epsilon_round": 0.2,
		"payload_digest": "sha256:00",
		"transport_problem": null,
	},
	"ledger": {
		"nonce_seen": false,
		"seen_nonces": 2,
		"epsilon_spent": 1.0,
		"epsilon_if_accepted": 1.2,
		"epsilon_lifetime_if_accepted": 2.0,
	},
}

with_value(path, value) := json.patch(valid, [{"op": "add", "path": path, "value": value}])

without(path) := json.patch(valid, [{"op": "remove", "path": path}])

reasons_for(doc) := reasons if {
	reasons := update.decision.reasons with input as doc
}

# Denied with exactly one reason, whose code is code.
only(doc, code) if {
	reasons := reasons_for(doc)
	count(reasons) == 1
	startswith(reasons[0], concat("", [code, ": "]))
}

test_a_valid_update_is_allowed if {
	decision := update.decision with input as valid
	decision.allow == true
	decision.reasons == []
	decision.policy_revision == data.fedsilo.params.revision
}

test_an_unknown_schema_version_is_denied if only(with_value("/schema_version", "fedsilo.update/v0"), "schema_version_unsupported")

test_a_missing_field_is_denied_not_ignored if {
	reasons_for(without("/update/l2_norm")) == ["input_invalid: update.l2_norm is missing, needs number"]
}

# A null flag is missing, and it does not vouch for the nonce either.
test_a_null_required_field_is_denied if {
	reasons := reasons_for(with_value("/ledger/nonce_seen", null))
	"input_invalid: ledger.nonce_seen is missing, needs boolean" in reasons
	count(reasons) == 2
}

test_an_empty_input_is_denied if {
	decision := update.decision with input as {}
	decision.allow == false
	count(decision.reasons) > 10
}

test_a_bad_signature_is_denied if only(with_value("/update/signature_valid", false), "signature_invalid")

test_an_unenrolled_silo_is_denied if only(with_value("/silo/enrolled", false), "silo_not_enrolled")

test_an_enrolled_silo_outside_the_job_is_denied if only(with_value("/silo/name", "z"), "silo_not_in_job")

test_an_update_for_another_round_is_denied if only(with_value("/update/round", 2), "stale_round")

test_a_replayed_nonce_is_denied if only(with_value("/ledger/nonce_seen", true), "nonce_replayed")

test_a_transport_reason_passes_through_verbatim if {
	reasons_for(with_value("/update/transport_problem", "payload_digest_mismatch: the payload differs")) == ["payload_digest_mismatch: the payload differs"]
}

test_a_ciphertext_refusal_of_the_hub_passes_through if {
	reasons_for(with_value("/update/transport_problem", "ciphertext_wrong_key: encrypted for another key")) == ["ciphertext_wrong_key: encrypted for another key"]
}

test_a_suspended_silo_is_denied_with_the_suspension_reason if {
	reasons_for(with_value("/update/transport_problem", "silo_suspended: a is suspended since round 2: under review")) == ["silo_suspended: a is suspended since round 2: under review"]
}

test_an_update_signed_with_a_retired_key_is_denied if {
	reasons_for(with_value("/update/transport_problem", "key_retired: signed with the retired key ab12")) == ["key_retired: signed with the retired key ab12"]
}

test_an_unphrased_transport_problem_is_wrapped if {
	reasons_for(with_value("/update/transport_problem", "Stream broke")) == ["transport_problem: Stream broke"]
}

test_a_code_the_hub_does_not_issue_is_wrapped if {
	reasons_for(with_value("/update/transport_problem", "made_up: looks like a code")) == ["transport_problem: made_up: looks like a code"]
}

test_a_negative_claim_is_denied if {
	reasons_for(with_value("/update/epsilon_round", -0.5)) == ["claim_out_of_range: update.epsilon_round is -0.5, below zero"]
}

test_a_norm_above_the_cap_is_denied_with_both_numbers if {
	reasons_for(with_value("/update/l2_norm", 5.5)) == ["norm_cap_exceeded: the update's L2 norm 5.5 is above the job's norm cap 5"]
}

test_a_norm_at_the_cap_is_allowed if {
	reasons_for(with_value("/update/l2_norm", 5.0)) == []
}

test_the_job_epsilon_ceiling_is_enforced if only(with_value("/ledger/epsilon_if_accepted", 8.5), "job_epsilon_exceeded")

test_the_silo_epsilon_ceiling_is_enforced_on_the_lifetime_spend if only(with_value("/ledger/epsilon_lifetime_if_accepted", 6.5), "silo_epsilon_exceeded")

test_the_silo_ceiling_falls_back_to_the_job_spend if {
	doc := json.patch(valid, [
		{"op": "remove", "path": "/ledger/epsilon_lifetime_if_accepted"},
		{"op": "replace", "path": "/ledger/epsilon_if_accepted", "value": 7},
	])
	only(doc, "silo_epsilon_exceeded")
}

test_a_ceiling_without_a_ledger_figure_is_denied if only(without("/ledger/epsilon_if_accepted"), "epsilon_unaccounted")

test_no_ceiling_means_no_epsilon_denial if {
	doc := json.patch(valid, [
		{"op": "replace", "path": "/job/max_epsilon", "value": null},
		{"op": "remove", "path": "/silo/max_epsilon"},
		{"op": "remove", "path": "/ledger/epsilon_if_accepted"},
		{"op": "remove", "path": "/ledger/epsilon_lifetime_if_accepted"},
	])
	reasons_for(doc) == []
}

test_plain_aggregation_of_sensitive_data_is_denied if only(with_value("/job/aggregation", "plain"), "aggregation_not_allowed")

test_plain_aggregation_of_internal_data_is_allowed if {
	doc := json.patch(valid, [
		{"op": "replace", "path": "/job/aggregation", "value": "plain"},
		{"op": "replace", "path": "/job/data_class", "value": "internal"},
	])
	reasons_for(doc) == []
}

test_an_unknown_data_class_allows_no_aggregation if only(with_value("/job/data_class", "secret"), "aggregation_not_allowed")

test_too_few_samples_are_denied if only(with_value("/update/num_samples", 9), "too_few_samples")

test_the_default_minimum_applies_when_the_job_sets_none if {
	doc := json.patch(valid, [
		{"op": "remove", "path": "/job/min_samples"},
		{"op": "replace", "path": "/update/num_samples", "value": 0},
	])
	reasons_for(doc) == ["too_few_samples: the update comes from 0 records, the job needs at least 1"]
}

test_every_failed_rule_is_reported_in_order if {
	doc := json.patch(valid, [
		{"op": "replace", "path": "/update/l2_norm", "value": 9},
		{"op": "replace", "path": "/update/num_samples", "value": 1},
		{"op": "replace", "path": "/update/signature_valid", "value": false},
	])
	codes := [code | some reason in reasons_for(doc); code := split(reason, ":")[0]]
	codes == ["norm_cap_exceeded", "signature_invalid", "too_few_samples"]
}

test_a_silo_above_the_anomaly_limit_is_denied if only(with_value("/silo/anomaly_score", 7.25), "update_anomalous")

test_a_score_at_the_anomaly_limit_is_allowed if {
	reasons_for(with_value("/silo/anomaly_score", 5.0)) == []
}

test_without_an_anomaly_limit_scores_are_not_judged if {
	doc := json.patch(valid, [
		{"op": "replace", "path": "/job/max_anomaly_score", "value": null},
		{"op": "replace", "path": "/silo/anomaly_score", "value": 99.0},
	])
	reasons_for(doc) == []
}

test_a_silo_not_yet_scored_is_not_judged if {
	reasons_for(with_value("/silo/anomaly_score", null)) == []
}

test_a_score_that_is_not_a_number_fails_closed if only(with_value("/silo/anomaly_score", "7"), "input_invalid")
