# One image for every Lampion role: API, worker (with the Postgres 15 binaries computes run on) and proxy.
FROM node:20-bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15 postgresql-client-15 postgresql-server-dev-15 btrfs-progs pv gcc make \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin lampion
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
COPY scripts ./scripts
RUN npx tsc -p tsconfig.build.json && bash scripts/build-guard.sh
ENV LAMPION_PG_BINDIR=/usr/lib/postgresql/15/bin \
    LAMPION_PG_OS_USER=lampion \
    LAMPION_DATA_DIR=/var/lib/lampion \
    LAMPION_LISTEN_HOST=0.0.0.0
ENTRYPOINT ["node", "--enable-source-maps", "dist/src/cli/start.js"]
CMD ["--role=all"]
