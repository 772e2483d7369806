# anneal-server in a container: build on Debian 12 with its own packages,
# run on debian:bookworm-slim with only the runtime libraries.
#   docker build -t anneal .
#   docker run -p 127.0.0.1:50051:50051 -p 127.0.0.1:9464:9464 \
#     -v anneal-data:/data anneal
# The server needs a tokens file at /run/secrets/anneal_tokens (make one with
# deploy/make-token.sh; mount it read-only), docs/security.md. The telemetry
# port needs a token of the same file too (bearer, or basic auth with the
# token as the password). docs/operations.md has the details.
# The database lives on the /data volume (use a local volume: SQLite's WAL
# does not work over NFS).

FROM debian:bookworm AS build
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends cmake ninja-build g++ pkg-config \
      libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc \
      libabsl-dev libyaml-cpp-dev libsqlite3-dev prometheus-cpp-dev \
      libcivetweb-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY anneal anneal
COPY python python
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DANNEAL_BUILD_TESTS=OFF -DANNEAL_BUILD_BENCH=OFF \
    && cmake --build build -j"$(nproc)" --target anneal-server annealctl \
    && strip build/bin/anneal-server build/bin/annealctl

FROM debian:bookworm-slim
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends libgrpc++1.51 libprotobuf32 libyaml-cpp0.7 \
      libsqlite3-0 libprometheus-cpp-core1.0 libcivetweb1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data anneal \
    && mkdir -p /data && chown anneal /data
COPY --from=build /src/build/bin/anneal-server /src/build/bin/annealctl /usr/local/bin/
USER anneal
WORKDIR /data
VOLUME ["/data"]
EXPOSE 50051 9464
# Inside the container's own network namespace; every call, and every page
# of the telemetry port, needs a token from the tokens file. Tokens travel
# in the clear unless TLS is set up (ANNEAL_TLS_CERT, ANNEAL_TLS_KEY,
# ANNEAL_METRICS_TLS=true): publish the ports on the host's loopback, or
# use TLS.
ENV ANNEAL_LISTEN=0.0.0.0:50051 \
    ANNEAL_TOKENS_FILE=/run/secrets/anneal_tokens \
    ANNEAL_METRICS_LISTEN=0.0.0.0:9464 \
    ANNEAL_METRICS_REQUIRE_TOKEN=true \
    ANNEAL_DB=/data/anneal.db \
    ANNEAL_SERVER=127.0.0.1:50051
# SIGTERM drains in-flight calls (ANNEAL_SHUTDOWN_GRACE, default 5s) and
# flushes the store; give `docker stop` at least that long.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/anneal-server"]
