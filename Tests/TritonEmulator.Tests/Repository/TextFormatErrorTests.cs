using Triton.Inference;
using TritonEmulator.Repository;

namespace TritonEmulator.Tests.Repository;

public sealed class TextFormatErrorTests
{
    private static TextFormatException ParseFails<T>(string text) where T : Google.Protobuf.IMessage<T>, new() =>
        Assert.Throws<TextFormatException>(() => TextFormat.Parse<T>(text));

    private static void AssertAt(TextFormatException error, int line, int column, string fragment)
    {
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        Assert.EndsWith($"(line {line}, column {column})", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownField_NamesFieldMessageTypeAndPosition()
    {
        var error = ParseFails<ModelConfig>("name: \"m\"\nbackend: \"b\"\nmax_batch_sise: 8\n");

        Assert.Equal("unknown field \"max_batch_sise\" in inference.ModelConfig (line 3, column 1)", error.Message);
        Assert.Equal(3, error.Line);
        Assert.Equal(1, error.Column);
    }

    [Fact]
    public void UnknownFieldInNestedMessage_NamesTheNestedType()
    {
        var error = ParseFails<ModelConfig>("input [\n  {\n    name: \"a\"\n    dim: [ 1 ]\n  }\n]");

        AssertAt(error, 4, 5, "unknown field \"dim\" in inference.ModelInput");
    }

    [Fact]
    public void StringForIntegerField_IsWrongType()
    {
        AssertAt(ParseFails<ModelConfig>("max_batch_size: \"8\""), 1, 17, "expected an integer for int32 field \"max_batch_size\"");
    }

    [Fact]
    public void FractionForIntegerField_IsWrongType()
    {
        AssertAt(ParseFails<ModelConfig>("max_batch_size: 1.5"), 1, 17, "fraction or exponent in \"1.5\"");
    }

    [Fact]
    public void IntegerForStringField_IsWrongType()
    {
        AssertAt(ParseFails<ModelConfig>("\n  name: 12"), 2, 9, "expected a string for field \"name\"");
    }

    [Fact]
    public void WordForBoolField_IsWrongType()
    {
        AssertAt(ParseFails<ModelTransactionPolicy>("decoupled: yes"), 1, 12, "expected a bool");
    }

    [Fact]
    public void ScalarForMessageField_IsWrongType()
    {
        AssertAt(ParseFails<ModelConfig>("model_transaction_policy: true"), 1, 27, "expected \"{\" or \"<\" to start message field \"model_transaction_policy\"");
    }

    [Fact]
    public void MissingColonAfterScalarField_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("name \"m\""), 1, 6, "expected \":\" after field \"name\"");
    }

    [Fact]
    public void ListForSingularField_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("max_batch_size: [ 1, 2 ]"), 1, 17, "is not repeated, so it cannot take a list");
    }

    [Fact]
    public void DuplicateSingularScalar_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("name: \"a\"\nmax_batch_size: 1\n  name: \"b\""), 3, 3, "field \"name\" of inference.ModelConfig is not repeated but is given more than once");
    }

    [Fact]
    public void DuplicateSingularScalarWithDefaultValue_IsStillAnError()
    {
        AssertAt(ParseFails<ModelTransactionPolicy>("decoupled: false decoupled: true"), 1, 18, "is given more than once");
    }

    [Fact]
    public void DuplicateSingularMessage_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("response_cache {}\nresponse_cache { enable: true }"), 2, 1, "field \"response_cache\"");
    }

    [Fact]
    public void TwoMembersOfOneOneof_IsAnError()
    {
        var error = ParseFails<ModelConfig>("dynamic_batching { }\nsequence_batching { }");

        AssertAt(error, 2, 1, "oneof \"scheduling_choice\"");
    }

    [Fact]
    public void UnterminatedString_PointsAtItsOpeningQuote()
    {
        AssertAt(ParseFails<ModelConfig>("name: \"abc\nbackend: \"x\""), 1, 7, "unterminated string");
    }

    [Fact]
    public void UnterminatedStringAtEndOfInput_PointsAtItsOpeningQuote()
    {
        AssertAt(ParseFails<ModelConfig>("max_batch_size: 1\nbackend: 'x"), 2, 10, "unterminated string");
    }

    [Fact]
    public void UnterminatedBrace_PointsAtTheOpeningBrace()
    {
        var error = ParseFails<ModelConfig>("name: \"m\"\ninput {\n  name: \"a\"\n  reshape { shape: [ ] }\n");

        AssertAt(error, 2, 7, "\"{\" opened here for inference.ModelInput is never closed");
    }

    [Fact]
    public void UnterminatedAngleBracket_PointsAtTheOpeningBracket()
    {
        AssertAt(ParseFails<ModelConfig>("optimization < eager_batching: true"), 1, 14, "expected \">\"");
    }

    [Fact]
    public void MismatchedCloser_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("optimization { eager_batching: true >"), 1, 37, "expected a field name of inference.ModelOptimizationPolicy, got \">\"");
    }

    [Fact]
    public void StrayClosingBraceAtTopLevel_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("name: \"m\"\n}"), 2, 1, "expected a field name of inference.ModelConfig, got \"}\"");
    }

    [Fact]
    public void UnterminatedList_PointsAtTheOpeningBracket()
    {
        AssertAt(ParseFails<ModelInput>("dims: [ 1, 2"), 1, 7, "\"[\" opened here is never closed");
    }

    [Fact]
    public void ListWithoutComma_IsAnError()
    {
        AssertAt(ParseFails<ModelInput>("dims: [ 1 2 ]"), 1, 11, "expected \",\" or \"]\"");
    }

    [Fact]
    public void BadEnumName_NamesEnumAndField()
    {
        var error = ParseFails<ModelConfig>("input {\n  data_type: TYPE_UINT33\n}");

        AssertAt(error, 2, 14, "unknown value \"TYPE_UINT33\" for enum inference.DataType of field \"data_type\"");
    }

    [Fact]
    public void StringForEnumField_IsWrongType()
    {
        AssertAt(ParseFails<ModelInput>("data_type: \"TYPE_FP32\""), 1, 12, "expected a name or number of enum inference.DataType");
    }

    [Theory]
    [InlineData("max_batch_size: 2147483648", 1, 17, "integer 2147483648 is out of range for int32 field \"max_batch_size\"")]
    [InlineData("max_batch_size: -2147483649", 1, 17, "integer -2147483649 is out of range for int32")]
    [InlineData("max_batch_size: 0x80000000", 1, 17, "integer 0x80000000 is out of range")]
    [InlineData("max_batch_size: 99999999999999999999999", 1, 17, "out of range for int32")]
    public void OutOfRangeInt32_IsAnError(string text, int line, int column, string fragment)
    {
        AssertAt(ParseFails<ModelConfig>(text), line, column, fragment);
    }

    [Theory]
    [InlineData("uint_contents: 4294967296", 1, 16, "integer 4294967296 is out of range for uint32 field \"uint_contents\"")]
    [InlineData("uint_contents: -1", 1, 16, "integer -1 is out of range for uint32")]
    [InlineData("uint64_contents: [ 1,\n -1 ]", 2, 2, "integer -1 is out of range for uint64")]
    [InlineData("uint64_contents: 18446744073709551616", 1, 18, "out of range for uint64")]
    [InlineData("int64_contents: 9223372036854775808", 1, 17, "out of range for int64")]
    [InlineData("int64_contents: -9223372036854775809", 1, 17, "out of range for int64")]
    public void OutOfRangeOrNegativeUnsigned_IsAnError(string text, int line, int column, string fragment)
    {
        AssertAt(ParseFails<InferTensorContents>(text), line, column, fragment);
    }

    [Theory]
    [InlineData("name: \"\\q\"", 1, 8, "unknown escape sequence \\q")]
    [InlineData("name: \"\\x\"", 1, 8, "\\x escape without hex digits")]
    [InlineData("name: \"\\777\"", 1, 8, "larger than a byte")]
    [InlineData("name: \"ok\\u12\"", 1, 10, "\\u escape needs 4 hex digits")]
    [InlineData("name: \"\\377\"", 1, 7, "not valid UTF-8")]
    public void BadStringContents_AreErrors(string text, int line, int column, string fragment)
    {
        AssertAt(ParseFails<ModelConfig>(text), line, column, fragment);
    }

    [Theory]
    [InlineData("max_batch_size: 09", 1, 17, "octal")]
    [InlineData("max_batch_size: 12abc", 1, 17, "\"12abc\" is not a valid number")]
    [InlineData("max_batch_size: 0x", 1, 17, "has no hex digits")]
    [InlineData("name: \"m\" @", 1, 11, "unexpected character '@'")]
    public void BadTokens_AreErrors(string text, int line, int column, string fragment)
    {
        AssertAt(ParseFails<ModelConfig>(text), line, column, fragment);
    }

    [Fact]
    public void ExtensionSyntax_IsRejectedClearly()
    {
        AssertAt(ParseFails<ModelConfig>("[ext.field]: 1"), 1, 1, "not supported");
    }

    [Fact]
    public void UnknownFieldInMapEntry_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("parameters {\n  name: \"x\"\n}"), 2, 3, "expected \"key\" or \"value\"");
    }

    [Fact]
    public void WrongValueTypeInMapEntry_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("parameters { key: \"a\" value: \"b\" }"), 1, 30, "expected \"{\" or \"<\"");
    }

    [Fact]
    public void MissingValueAtEndOfInput_IsAnError()
    {
        AssertAt(ParseFails<ModelConfig>("name:"), 1, 6, "got end of input");
    }
}
