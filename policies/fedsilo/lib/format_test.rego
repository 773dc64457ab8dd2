package fedsilo.lib_test

import data.fedsilo.lib

test_integral_numbers_print_as_digits if {
	lib.num(5) == "5"
	lib.num(5.0) == "5"
	lib.num(-3) == "-3"
}

test_fractions_print_with_ten_significant_digits if {
	lib.num(5.5) == "5.5"
	lib.num(4.123105625617661) == "4.123105626"
	lib.num(0.00001) == "1e-05"
}

test_values_of_any_type_are_described if {
	lib.describe("v1") == "v1"
	lib.describe(2) == "2"
	lib.describe(null) == "nothing"
	lib.describe({"a": 1}) == "object"
}

test_absent_and_null_fields_are_missing if {
	reasons := lib.missing_reasons([["a", "b"], ["a", "c"], ["d"]]) with input as {"a": {"b": null, "c": 0}}
	reasons == {"input_incomplete: a.b is missing", "input_incomplete: d is missing"}
}

test_an_unknown_schema_version_is_named if {
	lib.schema_reasons(["s/v1"]) == {"schema_version_unsupported: s/v0 is not one of s/v1"} with input as {"schema_version": "s/v0"}
	lib.schema_reasons(["s/v1"]) == set() with input as {"schema_version": "s/v1"}
	lib.schema_reasons(["s/v1"]) == {"schema_version_unsupported: nothing is not one of s/v1"} with input as {}
}
