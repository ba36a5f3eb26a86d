#!/usr/bin/env bash
# Start the team's MLflow and Prefect servers (both on PostgreSQL) and create the work pools.
# Reads the variables of team.env (see team.env.example). Logs go to ./infra/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
mkdir -p infra/logs
: "${MLFLOW_BACKEND_STORE_URI:?set it (see infra/team.env.example)}"
: "${PREFECT_API_DATABASE_CONNECTION_URL:?set it (see infra/team.env.example)}"

"$BIN/mlflow" server --host 127.0.0.1 --port 5000 --workers 1 \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-mlruns/artifacts}" \
  > infra/logs/mlflow.log 2>&1 &
"$BIN/prefect" server start --host 127.0.0.1 --port 4200 > infra/logs/prefect.log 2>&1 &

for url in http://127.0.0.1:5000/health http://127.0.0.1:4200/api/health; do
  for _ in $(seq 120); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 1; done
  curl -fsS "$url" >/dev/null || { echo "not healthy: $url (see infra/logs/)"; exit 1; }
done
export PREFECT_API_URL=http://127.0.0.1:4200/api
"$BIN/prefect" work-pool create cpu --type process --overwrite
"$BIN/prefect" work-pool create gpu --type process --overwrite
echo "MLflow: http://127.0.0.1:5000   Prefect: http://127.0.0.1:4200"
echo "deploy: SYNTHMED_PROJECT_DIR=\$PWD $BIN/prefect --no-prompt deploy --all"
