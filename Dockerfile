# The engine's image: `pipelines` with every role (server, worker, the CLI), ASP.NET Core and
# the warm containers' fork helper. docker-compose.yml runs it. Where no registry is reachable,
# scripts/build-deploy-images makes the base images below from Debian's packages and the
# machine's .NET and builds this file unchanged. Build with the classic builder or BuildKit; on
# an engine without a bridge network, with --network host (apt-get and NuGet need the network).

# The fork helper of warm containers, static so that it runs in FROM scratch images (scripts/build-native).
FROM debian:bookworm-slim AS native
RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY engine/native/warm-helper.c /src/
RUN gcc -O2 -static -Wall -Wextra -Werror -s -o /warm-helper /src/warm-helper.c

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# The packages first, from the project files alone: this layer is reused until a project file
# or a package version changes, so editing code restores nothing.
COPY Directory.Build.props Directory.Packages.props ./
COPY engine/Pipelines.Engine/Pipelines.Engine.csproj engine/Pipelines.Engine/
COPY engine/Pipelines.Server/Pipelines.Server.csproj engine/Pipelines.Server/
COPY engine/Pipelines.Cli/Pipelines.Cli.csproj engine/Pipelines.Cli/
RUN dotnet restore engine/Pipelines.Cli -r linux-x64 -p:PublishReadyToRun=true
COPY .editorconfig ./
COPY engine/ engine/
RUN dotnet publish engine/Pipelines.Cli -c Release -r linux-x64 --self-contained false --no-restore -p:PublishReadyToRun=true -o /app

# ASP.NET Core: the server role needs it, and every role is this one program.
FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
COPY --from=native /warm-helper /app/warm-helper
COPY deploy/entrypoint deploy/healthcheck /app/
# Root: a worker talks to the host's Docker engine through its socket and sets the containers'
# cgroup (docker-compose.yml says what to mount); the algorithms themselves run as 65534.
# The check knows each role: the /healthz of a server or of a worker's health listener (its
# PostgreSQL connection where that listener is off), nothing for a one-off command.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["/app/healthcheck"]
ENTRYPOINT ["/app/entrypoint"]
