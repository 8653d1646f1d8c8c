# The oracle node. Build: docker build -t price-oracle . (docker-compose.yaml does it for you.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p runtime \
    && cp target/release/runtime /usr/local/bin/runtime

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data oracle \
    && mkdir /data && chown oracle /data
COPY --from=build /usr/local/bin/runtime /usr/local/bin/runtime
USER oracle
VOLUME /data
# libp2p, and /health, /metrics and /prices.
EXPOSE 4001 9100
ENTRYPOINT ["runtime"]
CMD ["node"]
