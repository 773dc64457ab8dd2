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

# One input_incomplete reason per required path that is absent or null.
missing_reasons(paths) := {msg |
	some path in paths
	field(path) == null
	msg := concat("", ["input_incomplete: ", concat(".", path), " is missing"])
}

# A schema_version_unsupported reason unless the input declares one of versions.
schema_reasons(versions) := {msg |
	version := field(["schema_version"])
	not version in versions
	msg := concat("", ["schema_version_unsupported: ", describe(version), " is not one of ", concat(", ", versions)])
}
