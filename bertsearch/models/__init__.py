"""Models: what they must do (`base`), where they come from (`loading`), and what runs them: torch (`encoder`,
`cross_encoder`, `tracing`) or ONNX Runtime (`onnx_runtime`, from the forms `onnx_export` writes).

Importing this package, `base`, `loading` or `onnx_runtime` imports no torch.
"""
