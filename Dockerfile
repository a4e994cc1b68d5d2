# Builds the verify-push-server binary and runs it on a slim base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p verify-push-server

FROM debian:bookworm-slim
COPY --from=build /src/target/release/verify-push-server /usr/local/bin/verify-push-server
ENV VERIFY_PUSH_BIND=0.0.0.0:8080 \
    VERIFY_PUSH_DATABASE_URL=sqlite:///data/verify-push.db
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s CMD ["verify-push-server", "healthcheck"]
ENTRYPOINT ["verify-push-server"]
CMD ["serve"]
