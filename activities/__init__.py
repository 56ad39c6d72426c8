"""Activities: the side effects workflows run, each retryable and idempotent."""
