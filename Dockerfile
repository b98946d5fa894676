# The engine's own image, for a deployment with a registry (see docker-compose.yml).
# Not built by the tests here: this machine has no registry to pull the .NET images from.
# The fork helper of warm containers, static so that it runs in FROM scratch images (scripts/build-native).
FROM debian:bookworm-slim AS native
RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY engine/native/warm-helper.c /src/
RUN gcc -O2 -static -Wall -Wextra -Werror -s -o /warm-helper /src/warm-helper.c

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish engine/Pipelines.Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o /app

FROM mcr.microsoft.com/dotnet/runtime:10.0
WORKDIR /app
COPY --from=build /app .
COPY --from=native /warm-helper /app/warm-helper
ENTRYPOINT ["dotnet", "/app/pipelines.dll"]
