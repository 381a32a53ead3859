#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) answer, as the
# tests expect: start them when installed but stopped, install them from Debian's packages when
# missing. Does nothing where both already run (our machines).
set -uo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$version" ]; then
    conf=/etc/postgresql/$version/main/pg_hba.conf
    if [ -f "$conf" ] && ! grep -q "fairwatt-tests" "$conf"; then
      as_root sed -i '1i host all all 127.0.0.1/32 trust # fairwatt-tests\nhost all all ::1/128 trust # fairwatt-tests\nlocal all all trust # fairwatt-tests' "$conf"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || as_root pg_ctlcluster "$version" main restart
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  command -v redis-server >/dev/null 2>&1 || { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi
pg_up && echo "PostgreSQL: up" || echo "PostgreSQL: not reachable on 127.0.0.1:5432" >&2
redis_up && echo "Redis: up" || echo "Redis: not reachable on 127.0.0.1:6379" >&2
