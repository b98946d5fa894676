namespace Pipelines.Containers;

/// <summary>The credentials a pull presents to one registry (Algorithms:Registries gives them).</summary>
/// <param name="Registry">The registry's host, with its port when it has one.</param>
public sealed record RegistryLogin(string Registry, string? Username, string? Password)
{
    // A record prints every member; the password never reaches a message or a log.
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("Registry = ").Append(Registry).Append(", Username = ").Append(Username);
        return true;
    }
}
