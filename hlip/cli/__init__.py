"""The `hlip` command line. Sub-commands import the library lazily so `hlip --help` starts fast."""
