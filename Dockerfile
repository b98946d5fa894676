# The engine's own image, for a deployment with a registry (see docker-compose.yml).
# Not built by the tests here: this machine has no registry to pull the .NET images from.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish engine/Pipelines.Cli -c Release -o /app

FROM mcr.microsoft.com/dotnet/runtime:10.0
WORKDIR /app
COPY --from=build /app .
ENTRYPOINT ["dotnet", "/app/pipelines.dll"]
