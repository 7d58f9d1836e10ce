using System.Runtime.InteropServices;
using LLama.Native;

namespace TritonEmulator.Models.Guided;

/// <summary>
/// llama.cpp's lazy grammar sampler (<c>llama_sampler_init_grammar_lazy_patterns</c>): the text is free
/// until one of the trigger patterns matches the output, then the grammar holds from the pattern's first
/// group on. Called straight on the llama library LLamaSharp loaded (resolved through LLamaSharp's own
/// import resolver), because LLamaSharp's wrapper passes no token array when there are no trigger tokens,
/// which llama.cpp asserts on.
/// </summary>
internal static unsafe class LazyGrammar
{
    private static readonly Lazy<Exports> Native = new(Load);

    /// <summary>Adds the lazy grammar sampler to <paramref name="chain"/> (which then owns it).</summary>
    public static void Add(SafeLLamaSamplerChainHandle chain, SafeLlamaModelHandle model, string grammar, string root, IReadOnlyList<string> patterns)
    {
        ArgumentOutOfRangeException.ThrowIfZero(patterns.Count);
        var native = Native.Value;
        var strings = new IntPtr[patterns.Count];
        var grammarText = Marshal.StringToCoTaskMemUTF8(grammar);
        var rootText = Marshal.StringToCoTaskMemUTF8(root);
        var added = false;
        try
        {
            for (var i = 0; i < strings.Length; i++)
            {
                strings[i] = Marshal.StringToCoTaskMemUTF8(patterns[i]);
            }
            var noTokens = stackalloc int[1];
            IntPtr sampler;
            fixed (IntPtr* patternArray = strings)
            {
                var vocab = native.ModelGetVocab(model.DangerousGetHandle());
                sampler = native.InitLazyPatterns(vocab, (byte*)grammarText, (byte*)rootText, (byte**)patternArray, (nuint)strings.Length, noTokens, 0);
            }
            if (sampler == IntPtr.Zero)
            {
                throw new FormatException("llama.cpp rejected the structural tag's grammar or trigger patterns");
            }
            chain.DangerousAddRef(ref added);
            native.ChainAdd(chain.DangerousGetHandle(), sampler);
        }
        finally
        {
            if (added)
            {
                chain.DangerousRelease();
            }
            foreach (var text in strings)
            {
                Marshal.FreeCoTaskMem(text);
            }
            Marshal.FreeCoTaskMem(grammarText);
            Marshal.FreeCoTaskMem(rootText);
        }
    }

    private static Exports Load()
    {
        // The same handle LLamaSharp's P/Invokes use: its resolver picks the library it loaded.
        var library = NativeLibrary.Load("llama", typeof(NativeApi).Assembly, null);
        return new Exports(
            (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)NativeLibrary.GetExport(library, "llama_model_get_vocab"),
            (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, byte**, nuint, int*, nuint, IntPtr>)NativeLibrary.GetExport(library, "llama_sampler_init_grammar_lazy_patterns"),
            (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void>)NativeLibrary.GetExport(library, "llama_sampler_chain_add"));
    }

    private sealed class Exports(
        delegate* unmanaged[Cdecl]<IntPtr, IntPtr> modelGetVocab,
        delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, byte**, nuint, int*, nuint, IntPtr> initLazyPatterns,
        delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void> chainAdd)
    {
        public IntPtr ModelGetVocab(IntPtr model) => modelGetVocab(model);

        public IntPtr InitLazyPatterns(IntPtr vocab, byte* grammar, byte* root, byte** patterns, nuint patternCount, int* tokens, nuint tokenCount) =>
            initLazyPatterns(vocab, grammar, root, patterns, patternCount, tokens, tokenCount);

        public void ChainAdd(IntPtr chain, IntPtr sampler) => chainAdd(chain, sampler);
    }
}
