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

test_absent_null_and_mistyped_fields_are_invalid if {
	fields := [[["a", "b"], ["number"]], [["a", "c"], ["number"]], [["d"], ["string"]], [["a", "e"], ["boolean", "null"]], [["a", "f"], ["array"]]]
	reasons := lib.type_reasons(fields) with input as {"a": {"b": null, "c": 0, "e": "yes", "f": {}}}
	reasons == {
		"input_invalid: a.b is missing, needs number",
		"input_invalid: d is missing, needs string",
		"input_invalid: a.e is a string, needs boolean or null",
		"input_invalid: a.f is an object, needs array",
	}
}

test_an_unknown_schema_version_is_named if {
	lib.schema_reasons(["s/v1"]) == {"schema_version_unsupported: s/v0 is not one of s/v1"} with input as {"schema_version": "s/v0"}
	lib.schema_reasons(["s/v1"]) == set() with input as {"schema_version": "s/v1"}
	lib.schema_reasons(["s/v1"]) == {"schema_version_unsupported: nothing is not one of s/v1"} with input as {}
}
