# METADATA
# title: Shared helpers of the fedsilo decisions
# description: |
#   How reasons print values, and the input checks every decision makes first (schema
#   version, required fields). Used by fedsilo.update and fedsilo.job.
package fedsilo.lib

# Integral numbers as plain digits, others with ten significant digits: the one format that
# OPA (Go) and rego-cpp (C++) print identically; their %v differs for some floats.
# Only sprintf output, input strings and literals go into sprintf: rego-cpp's sprintf quotes
# strings made by other built-ins (format_int, concat, json.marshal), so messages that embed
# those are joined with concat instead.
num(x) := sprintf("%d", [round(x)]) if {
	x == floor(x)
	abs(x) < 1e15
} else := sprintf("%.10g", [x])

# A value of unknown type, for reasons about malformed input.
describe(value) := value if {
	is_string(value)
} else := num(value) if {
	is_number(value)
} else := "nothing" if {
	value == null
} else := type_name(value)

# The input value at path, or null when any step of the path is absent.
field(path) := object.get(input, path, null)

# One input_invalid reason per field whose value is absent or of a type it may not have.
# fields: [[path, [allowed type_name, ...]], ...]; "null" in the list makes the field optional.
# The rules compare values only once this holds, since OPA and rego-cpp order values of
# different types differently.
type_reasons(fields) := {msg |
	some spec in fields
	value := field(spec[0])
	not type_name(value) in spec[1]
	msg := concat("", ["input_invalid: ", concat(".", spec[0]), " ", found(value), ", needs ", concat(" or ", spec[1])])
}

found(value) := "is missing" if {
	value == null
} else := concat(" ", ["is", article(type_name(value)), type_name(value)])

article(type) := "an" if {
	type in {"array", "object"}
} else := "a"

# A schema_version_unsupported reason unless the input declares one of versions.
schema_reasons(versions) := {msg |
	version := field(["schema_version"])
	not version in versions
	msg := concat("", ["schema_version_unsupported: ", describe(version), " is not one of ", concat(", ", versions)])
}
