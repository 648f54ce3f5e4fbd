#!/bin/sh
# Run once by the postgres image when its volume is new: the role the app connects as, owning
# the schema the lab's tables go to and nothing else (docker-compose.yml).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_password="$LAB_APP_PASSWORD" <<'SQL'
CREATE EXTENSION IF NOT EXISTS vector;
CREATE ROLE lab_app LOGIN PASSWORD :'app_password';
CREATE SCHEMA pgvector_lab AUTHORIZATION lab_app;
ALTER ROLE lab_app SET search_path = pgvector_lab, public;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
