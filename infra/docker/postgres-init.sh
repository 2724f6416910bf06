#!/bin/sh
# First start of the postgres container: the application role and its databases (as `make stack-up` does).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE hlip LOGIN PASSWORD '${HLIP_DB_PASSWORD}';
CREATE DATABASE mlflow OWNER hlip;
CREATE DATABASE mlflow_auth OWNER hlip;
CREATE DATABASE prefect OWNER hlip;
CREATE DATABASE optuna OWNER hlip;
SQL
