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

internal sealed class ModelCatalog : IModelCatalog
{
    private readonly Dictionary<string, CatalogModel> _byId;

    public ModelCatalog(IOptions<ModelCatalogOptions> options, TextTokenizers tokenizers, IEnumerable<ITritonContract> contracts)
    {
        var contractByName = contracts.ToDictionary(c => c.Name, StringComparer.OrdinalIgnoreCase);
        _byId = new Dictionary<string, CatalogModel>(StringComparer.Ordinal);
        foreach (var (id, model) in options.Value.Models.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            _byId[id] = new CatalogModel(
                id,
                model,
                tokenizers.Get(model.Tokenizer),
                ChatTemplates.Get(model.ChatTemplate),
                contractByName[model.Contract]);
        }
        Models = [.. _byId.Values];
    }

    public IReadOnlyList<CatalogModel> Models { get; }

    public bool TryGet(string id, [NotNullWhen(true)] out CatalogModel? model) => _byId.TryGetValue(id, out model);
}
