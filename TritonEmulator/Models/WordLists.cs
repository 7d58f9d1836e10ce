namespace TritonEmulator.Models;

/// <summary>Decodes one row of a <c>[B, 2, N]</c> word list (FasterTransformer's <c>stop_words_list</c> / <c>bad_words_list</c>, TensorRT-LLM's <c>stop_words_list</c> / <c>bad_words_list</c>): ids, then cumulative end offsets padded with -1.</summary>
internal static class WordLists
{
    public static IReadOnlyList<int[]> Decode(RequestTensor? tensor, int row, string label, string name)
    {
        if (tensor is null)
        {
            return [];
        }
        if (tensor.Shape.Length != 3 || tensor.Shape[1] != 2)
        {
            throw RequestValidator.Invalid($"{label} {name} must have shape [batch, 2, N], got [{string.Join(",", tensor.Shape)}]");
        }
        var n = (int)tensor.Shape[2];
        var rowIndex = tensor.Shape[0] == 1 ? 0 : row;
        var idsStart = (long)rowIndex * 2 * n;
        var offsetsStart = idsStart + n;
        var words = new List<int[]>();
        var previous = 0;
        for (var i = 0; i < n; i++)
        {
            var end = tensor.Int32(offsetsStart + i);
            if (end < 0)
            {
                break;
            }
            if (end > n || end < previous)
            {
                throw RequestValidator.Invalid($"{label} {name} offsets must grow and stay within {n}, got {end}");
            }
            if (end > previous)
            {
                var word = new int[end - previous];
                for (var k = 0; k < word.Length; k++)
                {
                    word[k] = tensor.Int32(idsStart + previous + k);
                }
                words.Add(word);
            }
            previous = end;
        }
        return words;
    }
}
