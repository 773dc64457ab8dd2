"""Exit codes shared by every command."""

EXIT_OK = 0
# The job ran and failed, or a verification found a problem.
EXIT_FAILED = 1
# Bad usage or an invalid manifest: nothing was started.
EXIT_USAGE = 2
# The environment failed: a process, port or tool could not be started.
EXIT_ENVIRONMENT = 3
