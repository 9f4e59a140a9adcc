# syntax=docker/dockerfile:1
# The medallion binary in a small image.
#
#   docker build -t medallion .
#   docker run --rm medallion --help
#   docker run --rm -e MEDALLION_LAKE=s3://lake/prod -e AWS_ENDPOINT_URL=… medallion bronze --date 2026-11-20
#
# The builder compiles a release build: a cold one takes long (about an hour on 2 cores), the
# cache mounts below make later builds incremental (they need BuildKit, the default builder).
# Configuration comes from the environment (README "Configuration"); docker-compose.yml runs
# the image as the `pipeline` service against MinIO and PostgreSQL.

FROM rust:1.95-bookworm AS build
# cmake: a fallback some -sys crates (aws-lc-sys) use to build their C code.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p medallion \
    && install -m 0755 target/release/medallion /usr/local/bin/medallion

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/medallion medallion
COPY --from=build /usr/local/bin/medallion /usr/local/bin/medallion
USER medallion
WORKDIR /var/lib/medallion
# The defaults ./lake and ./landing are folders here; production sets MEDALLION_LAKE,
# MEDALLION_LANDING (s3://…) and MEDALLION_WAREHOUSE (postgres://…).
ENTRYPOINT ["medallion"]
CMD ["--help"]
