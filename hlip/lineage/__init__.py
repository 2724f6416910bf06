"""Code lineage: which first-party files a stage runs (its import closure plus the package data it reads).

`dvc.yaml` lists each stage's closure as the stage's code dependencies (a test keeps them equal), and the ingest
fingerprint hashes the closure of the ingest library, so both answer "which code made this output" the same way.
"""
