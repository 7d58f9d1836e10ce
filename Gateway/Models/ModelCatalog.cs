using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using Gateway.Text;
using Gateway.Triton.Contracts;
using Microsoft.Extensions.Options;

namespace Gateway.Models;

/// <summary>Public model id → everything needed to serve it.</summary>
public interface IModelCatalog
{
    IReadOnlyList<CatalogModel> Models { get; }

    bool TryGet(string id, [NotNullWhen(true)] out CatalogModel? model);
}

/// <summary>A resolved catalogue entry: the options plus the tokenizer, template and contract they name.</summary>
public sealed record CatalogModel(
    string Id,
    ModelOptions Options,
    ITextTokenizer Tokenizer,
    IChatTemplate ChatTemplate,
    ITritonContract Contract);

/// <summary>
/// The configured models (validated at start) plus the ones <see cref="TritonModelDiscovery"/> finds
/// in Triton's repository later. Readers see immutable snapshots; additions swap them.
/// </summary>
internal sealed class ModelCatalog : IModelCatalog
{
    private readonly TextTokenizers _tokenizers;
    private readonly Dictionary<string, ITritonContract> _contracts;
    private readonly Lock _gate = new();
    private ImmutableSortedDictionary<string, CatalogModel> _byId;
    private CatalogModel[] _models;

    public ModelCatalog(IOptions<ModelCatalogOptions> options, TextTokenizers tokenizers, IEnumerable<ITritonContract> contracts)
    {
        _tokenizers = tokenizers;
        _contracts = contracts.ToDictionary(c => c.Name, StringComparer.OrdinalIgnoreCase);
        var byId = ImmutableSortedDictionary.CreateBuilder<string, CatalogModel>(StringComparer.Ordinal);
        foreach (var (id, model) in options.Value.Models)
        {
            byId[id] = Resolve(id, model);
        }
        _byId = byId.ToImmutable();
        _models = [.. _byId.Values];
    }

    public IReadOnlyList<CatalogModel> Models => Volatile.Read(ref _models);

    public bool TryGet(string id, [NotNullWhen(true)] out CatalogModel? model) => Volatile.Read(ref _byId).TryGetValue(id, out model);

    /// <summary>Whether some entry already serves Triton model <paramref name="tritonModel"/>.</summary>
    public bool ServesTritonModel(string tritonModel)
    {
        foreach (var model in Models)
        {
            if (string.Equals(model.Options.TritonModel, tritonModel, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Adds a discovered model unless the id is taken; the options must already be valid.</summary>
    public bool TryAdd(string id, ModelOptions model)
    {
        var resolved = Resolve(id, model);
        lock (_gate)
        {
            if (_byId.ContainsKey(id))
            {
                return false;
            }
            var byId = _byId.Add(id, resolved);
            Volatile.Write(ref _byId, byId);
            Volatile.Write(ref _models, [.. byId.Values]);
            return true;
        }
    }

    private CatalogModel Resolve(string id, ModelOptions model) => new(
        id,
        model,
        _tokenizers.Get(model.Tokenizer),
        ChatTemplates.Get(model.ChatTemplate),
        _contracts[model.Contract]);
}
