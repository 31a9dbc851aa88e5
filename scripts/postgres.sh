#!/usr/bin/env bash
# Makes sure the local PostgreSQL answers on 127.0.0.1:5432 with a database "test" the tests
# can use (trust auth on loopback, as on the development machines). Root only.
set -euo pipefail
url_ok() { psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; }
url_ok && exit 0
cluster=$(ls /etc/postgresql 2>/dev/null | head -n 1)
if [ -z "$cluster" ]; then
  echo "postgres: no PostgreSQL cluster on this machine (apt-get install postgresql)" >&2
  exit 1
fi
pg_ctlcluster --skip-systemctl-redirect "$cluster" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -q && break
  sleep 0.5
done
url_ok && exit 0
# A fresh cluster: loopback connections need a password by default. Allow trust on loopback
# for the test database only, and create it.
hba=/etc/postgresql/$cluster/main/pg_hba.conf
if ! grep -q "ivr-rating tests" "$hba"; then
  sed -i '1i # ivr-rating tests: trust loopback for the test database\nhost test postgres 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main reload
fi
su postgres -c "psql -tAc \"select 1 from pg_database where datname='test'\"" | grep -q 1 \
  || su postgres -c "createdb test"
url_ok || { echo "postgres: cannot connect to postgresql://postgres@127.0.0.1:5432/test" >&2; exit 1; }
