"""Request safety of the served model: what a client may send, and what the server will read for it.

- `policy`: the deployment's allow-list of study roots (local folders, `s3://` prefixes) and the request limits,
  from the environment and the model config; no roots by default, so paths are refused until a deployment
  names them.
- `archive`: a study sent as bytes (zip or tar, base64 in the request) extracted safely into a private work
  folder (no absolute names, no `..`, no links or devices, bounded size and file count).
- `request`: one request row turned into something ingest can read (an extracted archive, an allowed folder or
  prefix, allowed ingested volumes), with the limits checked from the headers before any pixel is decoded, and
  answers made JSON-safe (no NaN).

Every refusal is a `RequestError` whose message names no server path.
"""
