package fedsilo.job_test

import data.fedsilo.job

spec := {
	"silos": ["a", "b", "c"],
	"aggregation": {"mode": "masked"},
	"policy": {"dataClass": "sensitive", "maxEpsilon": 8},
	"privacy": {"mode": "silo"},
}

reasons_for(s) := reasons if {
	reasons := job.decision.reasons with input as {"spec": s}
}

test_a_masked_sensitive_job_is_admitted if {
	decision := job.decision with input as {"spec": spec}
	decision.allow
}

test_plain_aggregation_of_sensitive_data_is_refused if {
	reasons := reasons_for(json.patch(spec, [{"op": "replace", "path": "/aggregation/mode", "value": "plain"}]))
	startswith(reasons[0], "aggregation_not_allowed")
}

test_a_ceiling_above_the_organization_maximum_is_refused if {
	reasons := reasons_for(json.patch(spec, [{"op": "replace", "path": "/policy/maxEpsilon", "value": 50}]))
	startswith(reasons[0], "epsilon_above_organization_max")
}

test_sensitive_private_jobs_need_a_ceiling if {
	reasons := reasons_for(json.patch(spec, [{"op": "remove", "path": "/policy/maxEpsilon"}]))
	startswith(reasons[0], "epsilon_ceiling_missing")
}

test_masking_needs_three_silos if {
	reasons := reasons_for(json.patch(spec, [{"op": "replace", "path": "/silos", "value": ["a", "b"]}]))
	startswith(reasons[0], "too_few_silos_for_masking")
}
