using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Pipelines.Tests.Hosting;

/// <summary>
/// Which types each type of a compiled assembly uses, read from its metadata and IL with
/// System.Reflection.Metadata: base type and interfaces, generic constraints, the signatures of
/// fields, methods, properties and events, custom attributes' constructors, and every token in
/// every method body (calls, fields, casts, typeof, locals), generic instantiations unpacked.
/// Nested and compiler-made types (lambdas' closures, async state machines) count as their
/// outermost type. A type is named by its namespace and name; a reference to another assembly
/// carries that assembly's name.
/// </summary>
internal static class TypeReferences
{
    /// <summary>A type as the graph sees it: its assembly, namespace and (outermost) name.</summary>
    public sealed record TypeName(string Assembly, string Namespace, string Name)
    {
        public override string ToString() => $"{Namespace}.{Name}";
    }

    private static readonly Dictionary<short, OperandType> Operands = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value, o => o.OperandType);

    /// <summary>
    /// Walks a method body's IL and hands every metadata token operand (a method, field, type,
    /// token or signature) to <paramref name="token"/> with its operand type, stepping over the rest.
    /// </summary>
    public static void Tokens(MethodBodyBlock body, Action<OperandType, EntityHandle> token)
    {
        var il = body.GetILReader();
        while (il.RemainingBytes > 0)
        {
            short code = il.ReadByte();
            if (code == 0xFE)
            {
                code = unchecked((short)(0xFE00 | il.ReadByte()));
            }

            if (!Operands.TryGetValue(code, out var operand))
            {
                throw new InvalidOperationException($"IL opcode 0x{code:X} at {il.Offset - 1} is not one .NET knows: the reader lost its place");
            }

            switch (operand)
            {
                case OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok or OperandType.InlineSig:
                    token(operand, MetadataTokens.EntityHandle(il.ReadInt32()));
                    break;
                case OperandType.InlineSwitch:
                    // Read first: "Offset += 4 * ReadInt32()" would take Offset before the count is read.
                    var targets = il.ReadInt32();
                    il.Offset += 4 * targets;
                    break;
                case OperandType.InlineI8 or OperandType.InlineR:
                    il.Offset += 8;
                    break;
                case OperandType.InlineBrTarget or OperandType.InlineI or OperandType.InlineString or OperandType.ShortInlineR:
                    il.Offset += 4;
                    break;
                case OperandType.InlineVar:
                    il.Offset += 2;
                    break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar:
                    il.Offset += 1;
                    break;
            }
        }
    }

    /// <summary>Every type defined in the assembly at <paramref name="path"/> with the types it uses.</summary>
    public static Dictionary<TypeName, HashSet<TypeName>> Read(string path)
    {
        using var pe = new PEReader(File.OpenRead(path));
        var md = pe.GetMetadataReader();
        var self = md.GetString(md.GetAssemblyDefinition().Name);
        var uses = new Dictionary<TypeName, HashSet<TypeName>>();
        foreach (var handle in md.TypeDefinitions)
        {
            var owner = Outermost(md, self, handle);
            if (!uses.TryGetValue(owner, out var set))
            {
                uses[owner] = set = [];
            }

            var collector = new Collector(md, self, set);
            var type = md.GetTypeDefinition(handle);
            collector.Entity(type.BaseType);
            foreach (var i in type.GetInterfaceImplementations())
            {
                collector.Entity(md.GetInterfaceImplementation(i).Interface);
            }

            collector.GenericParameters(type.GetGenericParameters());
            collector.Attributes(type.GetCustomAttributes());
            foreach (var f in type.GetFields())
            {
                var field = md.GetFieldDefinition(f);
                field.DecodeSignature(collector, null);
                collector.Attributes(field.GetCustomAttributes());
            }

            foreach (var p in type.GetProperties())
            {
                var property = md.GetPropertyDefinition(p);
                property.DecodeSignature(collector, null);
                collector.Attributes(property.GetCustomAttributes());
            }

            foreach (var e in type.GetEvents())
            {
                collector.Entity(md.GetEventDefinition(e).Type);
            }

            foreach (var m in type.GetMethods())
            {
                var method = md.GetMethodDefinition(m);
                method.DecodeSignature(collector, null);
                collector.GenericParameters(method.GetGenericParameters());
                collector.Attributes(method.GetCustomAttributes());
                foreach (var p in method.GetParameters())
                {
                    collector.Attributes(md.GetParameter(p).GetCustomAttributes());
                }

                if (method.RelativeVirtualAddress != 0)
                {
                    collector.Body(pe.GetMethodBody(method.RelativeVirtualAddress));
                }
            }
        }

        return uses;
    }

    private static TypeName Outermost(MetadataReader md, string assembly, TypeDefinitionHandle handle)
    {
        var type = md.GetTypeDefinition(handle);
        while (type.GetDeclaringType() is { IsNil: false } outer)
        {
            type = md.GetTypeDefinition(outer);
        }

        return new TypeName(assembly, md.GetString(type.Namespace), md.GetString(type.Name));
    }

    private static TypeName Outermost(MetadataReader md, TypeReferenceHandle handle)
    {
        var type = md.GetTypeReference(handle);
        while (type.ResolutionScope.Kind == HandleKind.TypeReference)
        {
            type = md.GetTypeReference((TypeReferenceHandle)type.ResolutionScope);
        }

        var assembly = type.ResolutionScope.Kind == HandleKind.AssemblyReference
            ? md.GetString(md.GetAssemblyReference((AssemblyReferenceHandle)type.ResolutionScope).Name)
            : "";
        return new TypeName(assembly, md.GetString(type.Namespace), md.GetString(type.Name));
    }

    /// <summary>Collects what signatures and bodies name; a signature's types are recorded as it is decoded.</summary>
    private sealed class Collector(MetadataReader md, string assembly, HashSet<TypeName> into) : ISignatureTypeProvider<bool, object?>
    {
        public void Entity(EntityHandle handle)
        {
            if (handle.IsNil)
            {
                return;
            }

            switch (handle.Kind)
            {
                case HandleKind.TypeDefinition:
                    into.Add(Outermost(md, assembly, (TypeDefinitionHandle)handle));
                    break;
                case HandleKind.TypeReference:
                    into.Add(Outermost(md, (TypeReferenceHandle)handle));
                    break;
                case HandleKind.TypeSpecification:
                    md.GetTypeSpecification((TypeSpecificationHandle)handle).DecodeSignature(this, null);
                    break;
                case HandleKind.MethodDefinition:
                    var method = md.GetMethodDefinition((MethodDefinitionHandle)handle);
                    Entity(method.GetDeclaringType());
                    method.DecodeSignature(this, null);
                    break;
                case HandleKind.FieldDefinition:
                    var field = md.GetFieldDefinition((FieldDefinitionHandle)handle);
                    Entity(field.GetDeclaringType());
                    field.DecodeSignature(this, null);
                    break;
                case HandleKind.MemberReference:
                    var member = md.GetMemberReference((MemberReferenceHandle)handle);
                    Entity(member.Parent);
                    if (member.GetKind() == MemberReferenceKind.Method)
                    {
                        member.DecodeMethodSignature(this, null);
                    }
                    else
                    {
                        member.DecodeFieldSignature(this, null);
                    }

                    break;
                case HandleKind.MethodSpecification:
                    var spec = md.GetMethodSpecification((MethodSpecificationHandle)handle);
                    Entity(spec.Method);
                    spec.DecodeSignature(this, null);
                    break;
                case HandleKind.StandaloneSignature:
                    var standalone = md.GetStandaloneSignature((StandaloneSignatureHandle)handle);
                    if (standalone.GetKind() == StandaloneSignatureKind.LocalVariables)
                    {
                        standalone.DecodeLocalSignature(this, null);
                    }
                    else
                    {
                        standalone.DecodeMethodSignature(this, null);
                    }

                    break;
            }
        }

        public void Attributes(CustomAttributeHandleCollection attributes)
        {
            foreach (var a in attributes)
            {
                Entity(md.GetCustomAttribute(a).Constructor);
            }
        }

        public void GenericParameters(GenericParameterHandleCollection parameters)
        {
            foreach (var p in parameters)
            {
                foreach (var c in md.GetGenericParameter(p).GetConstraints())
                {
                    Entity(md.GetGenericParameterConstraint(c).Type);
                }
            }
        }

        public void Body(MethodBodyBlock body)
        {
            if (!body.LocalSignature.IsNil)
            {
                Entity(body.LocalSignature);
            }

            foreach (var region in body.ExceptionRegions)
            {
                Entity(region.CatchType);
            }

            Tokens(body, (_, token) => Entity(token));
        }

        public bool GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind)
        {
            into.Add(Outermost(md, assembly, handle));
            return true;
        }

        public bool GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind)
        {
            into.Add(Outermost(md, handle));
            return true;
        }

        public bool GetTypeFromSpecification(MetadataReader reader, object? genericContext, TypeSpecificationHandle handle, byte rawTypeKind)
        {
            Entity(handle);
            return true;
        }

        public bool GetPrimitiveType(PrimitiveTypeCode typeCode) => true;

        public bool GetSZArrayType(bool elementType) => true;

        public bool GetArrayType(bool elementType, ArrayShape shape) => true;

        public bool GetByReferenceType(bool elementType) => true;

        public bool GetPointerType(bool elementType) => true;

        public bool GetPinnedType(bool elementType) => true;

        public bool GetGenericInstantiation(bool genericType, ImmutableArray<bool> typeArguments) => true;

        public bool GetGenericTypeParameter(object? genericContext, int index) => true;

        public bool GetGenericMethodParameter(object? genericContext, int index) => true;

        public bool GetFunctionPointerType(MethodSignature<bool> signature) => true;

        public bool GetModifiedType(bool modifier, bool unmodifiedType, bool isRequired) => true;
    }
}
