package fedsilo.job_test

import data.fedsilo.job

valid := {
	"schema_version": "fedsilo.job/v1",
	"job": {
		"name": "j",
		"aggregation": "masked",
		"data_class": "sensitive",
		"silos": ["a", "b", "c"],
		"min_silos": 2,
		"norm_cap": 5.0,
		"min_samples": 10,
		"max_epsilon": 8.0,
		"privacy": {"mode": "silo", "target_epsilon": 6.0, "delta": 1e-5},
	},
}

with_value(path, value) := json.patch(valid, [{"op": "add", "path": path, "value": value}])

reasons_for(doc) := reasons if {
	reasons := job.decision.reasons with input as doc
}

only(doc, code) if {
	reasons := reasons_for(doc)
	count(reasons) == 1
	startswith(reasons[0], concat("", [code, ": "]))
}

test_a_masked_sensitive_private_job_is_admitted if {
	decision := job.decision with input as valid
	decision.allow == true
	decision.reasons == []
	decision.policy_revision == data.fedsilo.params.revision
}

test_an_unknown_schema_version_is_refused if only(with_value("/schema_version", "fedsilo.job/v9"), "schema_version_unsupported")

test_a_missing_field_is_refused if {
	reasons_for(json.patch(valid, [{"op": "remove", "path": "/job/privacy/mode"}])) == ["input_invalid: job.privacy.mode is missing, needs string"]
}

test_plain_aggregation_of_sensitive_data_is_refused if only(with_value("/job/aggregation", "plain"), "aggregation_not_allowed")

test_plain_aggregation_of_public_data_is_admitted if {
	doc := json.patch(valid, [
		{"op": "replace", "path": "/job/aggregation", "value": "plain"},
		{"op": "replace", "path": "/job/data_class", "value": "public"},
	])
	reasons_for(doc) == []
}

test_a_ceiling_above_the_organization_maximum_is_refused if {
	reasons_for(with_value("/job/max_epsilon", 50)) == ["epsilon_above_organization_max: the job's max_epsilon 50 is above the organization's maximum 10"]
}

test_a_target_above_the_job_ceiling_is_refused if only(with_value("/job/privacy/target_epsilon", 9), "target_epsilon_above_ceiling")

test_a_target_above_the_organization_maximum_is_refused if {
	doc := json.patch(valid, [
		{"op": "replace", "path": "/job/data_class", "value": "internal"},
		{"op": "remove", "path": "/job/max_epsilon"},
		{"op": "replace", "path": "/job/privacy/target_epsilon", "value": 12},
	])
	only(doc, "target_epsilon_above_ceiling")
}

test_sensitive_private_jobs_need_a_ceiling if only(json.patch(valid, [{"op": "remove", "path": "/job/max_epsilon"}]), "epsilon_ceiling_missing")

test_sensitive_jobs_without_privacy_need_no_ceiling if {
	doc := json.patch(valid, [
		{"op": "remove", "path": "/job/max_epsilon"},
		{"op": "replace", "path": "/job/privacy", "value": {"mode": "none"}},
	])
	reasons_for(doc) == []
}

test_masking_needs_three_silos if only(with_value("/job/silos", ["a", "b"]), "too_few_silos_for_masking")
