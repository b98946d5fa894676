using System.Reflection;
using Pipelines.Model;

namespace Pipelines.Tests.Hosting;

/// <summary>
/// The engine's public surface is what the CLI, the server and the bench use (docs/architecture.md):
/// a public engine type is one their compiled assemblies name (read from their metadata, so no
/// list is kept by hand), or one that the public members, base types or (for an interface) base
/// interfaces of such a type expose (C# requires those to be public too; a class may implement an
/// internal interface). Every other type is internal; the tests see it
/// through InternalsVisibleTo. A constant is copied into the assembly that uses it and leaves no
/// reference there: a constant others use lives in a type they name otherwise (RunLayout), or its
/// type is listed in <see cref="ReadForConstants"/>.
/// </summary>
[Unit]
public sealed class PublicSurfaceTests
{
    /// <summary>The assemblies that use the engine from outside: the CLI, the server and the bench (copied beside the tests, built for this).</summary>
    private static readonly string[] Users = ["pipelines", "Pipelines.Server", "Pipelines.Bench"];

    /// <summary>Types the users read only constants of (the CLI: AlgorithmReference.Canary; the server: UsageKinds), which the metadata cannot show; each must still be public, hold a public constant, and be named by no user (else it need not be here).</summary>
    private static readonly string[] ReadForConstants = ["Pipelines.Algorithms.AlgorithmReference", "Pipelines.Usage.UsageKinds"];

    [Fact]
    public void Every_public_engine_type_is_named_by_the_cli_the_server_or_the_bench_or_exposed_by_one_that_is()
    {
        var engine = typeof(Workflow).Assembly;
        var named = Users.SelectMany(NamedBy).ToHashSet(StringComparer.Ordinal);

        foreach (var name in ReadForConstants)
        {
            var type = engine.GetType(name);
            Assert.True(type is { IsPublic: true }, $"{name} is listed as read for its constants but is not a public engine type: take it off ReadForConstants");
            Assert.True(type.GetFields(BindingFlags.Public | BindingFlags.Static).Any(f => f.IsLiteral), $"{name} has no public constant: take it off ReadForConstants");
            Assert.False(named.Contains(name), $"{name} is named by a user: take it off ReadForConstants");
        }

        var needless = Needless(engine.GetExportedTypes(), new HashSet<string>(named.Concat(ReadForConstants), StringComparer.Ordinal));

        Assert.True(needless.Count == 0, "public engine types that neither the CLI, the server nor the bench uses (make them internal): " + string.Join(", ", needless));
    }

    [Fact]
    public void Each_user_of_the_engine_is_read_and_names_engine_types()
    {
        foreach (var user in Users)
        {
            Assert.True(File.Exists(Bin(user)), $"{Bin(user)} is missing: the tests' build copies it there");
            Assert.NotEmpty(NamedBy(user));
        }

        Assert.Contains("Pipelines.Model.Workflow", NamedBy("pipelines"));
    }

    [Fact]
    public void A_public_type_nobody_names_is_named_and_one_a_named_types_public_member_exposes_is_not()
    {
        Type[] types = [typeof(NamedShape), typeof(ExposedShape), typeof(ExposedByExposed), typeof(HiddenUse), typeof(Unused), typeof(IImplementedOnly), typeof(INamedContract), typeof(IBaseOfNamed)];

        var needless = Needless(types, new HashSet<string>([typeof(NamedShape).FullName!, typeof(INamedContract).FullName!], StringComparer.Ordinal));

        Assert.Equal([typeof(HiddenUse).FullName!, typeof(IImplementedOnly).FullName!, typeof(Unused).FullName!], needless);
    }

    /// <summary>The public types of <paramref name="types"/> (top-level only) that are neither in <paramref name="named"/> nor exposed by the public surface of one that is, however indirectly.</summary>
    internal static List<string> Needless(IEnumerable<Type> types, ISet<string> named)
    {
        var candidates = types.Where(t => !t.IsNested || t.DeclaringType == typeof(PublicSurfaceTests)).ToDictionary(t => t.FullName!, StringComparer.Ordinal);
        var kept = candidates.Keys.Where(named.Contains).ToHashSet(StringComparer.Ordinal);
        var todo = new Queue<string>(kept);
        while (todo.TryDequeue(out var name))
        {
            foreach (var used in Exposed(candidates[name]))
            {
                if (candidates.ContainsKey(used.FullName!) && kept.Add(used.FullName!))
                {
                    todo.Enqueue(used.FullName!);
                }
            }
        }

        return [.. candidates.Keys.Where(n => !kept.Contains(n)).Order(StringComparer.Ordinal)];
    }

    /// <summary>The names the assembly <paramref name="user"/> uses from the engine, outermost types only.</summary>
    private static HashSet<string> NamedBy(string user) =>
        TypeReferences.Read(Bin(user)).Values.SelectMany(u => u).Where(t => t.Assembly == "Pipelines.Engine").Select(t => t.ToString()).ToHashSet(StringComparer.Ordinal);

    private static string Bin(string assembly) => Path.Combine(AppContext.BaseDirectory, assembly + ".dll");

    /// <summary>The types a type shows to other assemblies: its base type, an interface's base interfaces, constraints and the signatures of its public and protected members, nested public types' included; each as its outermost type.</summary>
    private static IEnumerable<Type> Exposed(Type type)
    {
        const BindingFlags declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        // A class or struct may implement an internal interface (only an interface's base interfaces must be as public as it), so only those count.
        IEnumerable<Type> shown = [.. type.IsInterface ? type.GetInterfaces() : [], .. type.IsGenericTypeDefinition ? type.GetGenericArguments().SelectMany(g => g.GetGenericParameterConstraints()) : []];
        if (type.BaseType is { } baseType)
        {
            shown = shown.Append(baseType);
        }

        foreach (var member in type.GetMembers(declared))
        {
            shown = shown.Concat(member switch
            {
                FieldInfo f when Visible(f.IsPublic, f.IsFamily, f.IsFamilyOrAssembly) => [f.FieldType],
                MethodBase m when Visible(m.IsPublic, m.IsFamily, m.IsFamilyOrAssembly) => Signature(m),
                PropertyInfo p when p.GetAccessors(nonPublic: true).Any(a => Visible(a.IsPublic, a.IsFamily, a.IsFamilyOrAssembly)) => [p.PropertyType, .. p.GetIndexParameters().Select(i => i.ParameterType)],
                EventInfo e when e.AddMethod is { } add && Visible(add.IsPublic, add.IsFamily, add.IsFamilyOrAssembly) => [e.EventHandlerType!],
                Type nested when nested.IsNestedPublic || nested.IsNestedFamily || nested.IsNestedFamORAssem => Exposed(nested),
                _ => [],
            });
        }

        return shown.SelectMany(Parts).Select(Outermost).Distinct();
    }

    private static bool Visible(bool isPublic, bool isFamily, bool isFamilyOrAssembly) => isPublic || isFamily || isFamilyOrAssembly;

    private static IEnumerable<Type> Signature(MethodBase method)
    {
        var types = method.GetParameters().Select(p => p.ParameterType);
        if (method is MethodInfo info)
        {
            types = types.Append(info.ReturnType);
            if (info.IsGenericMethodDefinition)
            {
                types = types.Concat(info.GetGenericArguments().SelectMany(g => g.GetGenericParameterConstraints()));
            }
        }

        return types;
    }

    /// <summary>A type and what it is made of: element types, generic definitions and their arguments.</summary>
    private static IEnumerable<Type> Parts(Type type)
    {
        if (type.IsGenericParameter)
        {
            return [];
        }

        if (type.HasElementType)
        {
            return Parts(type.GetElementType()!);
        }

        return type.IsConstructedGenericType ? [type.GetGenericTypeDefinition(), .. type.GetGenericArguments().SelectMany(Parts)] : [type];
    }

    private static Type Outermost(Type type)
    {
        while (type.IsNested && type.DeclaringType != typeof(PublicSurfaceTests))
        {
            type = type.DeclaringType!;
        }

        return type;
    }

    /// <summary>Named by a user; its public method exposes <see cref="ExposedShape"/>, its private one does not expose <see cref="HiddenUse"/>, and the interface it implements could be internal.</summary>
    public sealed class NamedShape : IImplementedOnly
    {
        public ExposedShape Make() => new(new ExposedByExposed());

        internal static HiddenUse Hidden() => new();
    }

    public sealed record ExposedShape(ExposedByExposed Inner);

    public sealed class ExposedByExposed;

    public sealed class HiddenUse;

    public sealed class Unused;

    public interface IImplementedOnly;

    /// <summary>Named by a user: its base interface must be as public as it.</summary>
    public interface INamedContract : IBaseOfNamed;

    public interface IBaseOfNamed;
}
