"""Export an mmseg segmentor, vanilla or AiluRus, to ONNX
(``ailurus_mm/deploy.py``; docs/usage.md, "Deploy"):
``python tools/export_onnx.py CONFIG CHECKPOINT --shape H W --out FILE.onnx``.
"""
if __name__ == '__main__':
    from ailurus_mm.deploy import export_main

    export_main()
