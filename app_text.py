"""The demo's words in English and Chinese (gradio's ``gr.I18n``: the browser's language picks
one; the page's Settings, at its foot, switch it). Keys are short names; ``app.py`` uses
``T(key)`` wherever a label, a button or a paragraph of explanation is shown."""

from __future__ import annotations

EN = {
    "title": "# mmattn: where does each word look?\nBidirectional text–image cross-attention: **text queries image** (each word "
    "gets a map over the image's patches) and **image queries text** (each patch gets a distribution over the words).",
    "model": "Model",
    "model_info": "the shipped shapes model, or a photo backend (loaded when picked)",
    "world": "What this model knows",
    "caption_en_zh": "Caption (English or Chinese)",
    "caption_en": "Caption (English)",
    "caption_zh_en": "Caption (Chinese or English)",
    "caption_placeholder": "a red circle left of a blue square",
    "settings": "Settings",
    "method": "Method",
    "method_info": "attention: one layer's weights · rollout: all layers combined · gradcam: weights × gradient of the match score"
    " · legrad: gradients through every layer of CLIP's vision tower (photo backends)",
    "layer": "Fusion layer",
    "heads": "Heads",
    "heads_info": "mean / max over heads, or one head",
    "boxes": "Show boxes of the words found",
    "ground_button": "Ground",
    "examples": "Examples (click one: it is grounded at once)",
    "tab_ground": "Ground",
    "ground_explain": "Each word's map on **one scale** shared by all words: a word that looks everywhere stays faint. One "
    "colour per word; tick words below to show or hide them.",
    "where": "Where each word looks",
    "words_shown": "Words shown",
    "match": "Does the caption describe the image?",
    "notes": "Notes",
    "per_word": "Per word",
    "json": "JSON",
    "result": "Result",
    "download_json": "Download the numbers (JSON)",
    "tab_i2t": "Image → text",
    "i2t_explain": "**Click a region**: the patch there queries the caption; the bars are the weights it gives to each word. "
    "The rest goes to tokens that are not words: [CLS] (start), [SEP] (end) and punctuation. Run *Ground* first.",
    "click_region": "Click a region",
    "patch_words": "Words this patch attends to",
    "x": "x (input image pixels)",
    "y": "y",
    "words_at": "Words at (x, y)",
    "patch": "Patch",
    "tab_heads": "Heads & layers",
    "heads_explain": "One word in every fusion layer (rows) and head (columns), both directions. Heads specialise; the mean "
    "combines them. One colour scale per grid (brightest = the largest value in it).",
    "word": "Word",
    "t2i_explain": "**Text → image**: where the word looks (its attention row over the patches).",
    "i2t_grid_explain": "**Image → text**: the weight every patch gives to the word (each patch's weights over all tokens sum to 1).",
    "maps": "Maps",
    "tab_steps": "Step by step",
    "tab_positions": "Positions",
}

ZH = {
    "title": "# mmattn：每个词在看哪里？\n双向图文交叉注意力：**文本查询图像**（每个词得到一张覆盖图像各个图块的注意力图），"
    "**图像查询文本**（每个图块得到一个在各个词上的分布）。",
    "model": "模型",
    "model_info": "随附的形状模型，或照片后端（选中时加载）",
    "world": "模型认识什么",
    "caption_en_zh": "描述（英文或中文）",
    "caption_en": "描述（英文）",
    "caption_zh_en": "描述（中文或英文）",
    "caption_placeholder": "红色的圆在蓝色方块的左边",
    "settings": "设置",
    "method": "方法",
    "method_info": "attention：一层的注意力权重 · rollout：各层合起来 · gradcam：权重 × 匹配分数的梯度"
    " · legrad：穿过 CLIP 视觉塔每一层的梯度（照片后端）",
    "layer": "融合层",
    "heads": "注意力头",
    "heads_info": "各头的平均 / 最大，或单个头",
    "boxes": "为找到的词画框",
    "ground_button": "定位",
    "examples": "示例（点一个即可直接定位）",
    "tab_ground": "定位",
    "ground_explain": "所有词的注意力图用**同一个刻度**：到处都看的词颜色就淡。每个词一种颜色；在下面勾选要显示或隐藏的词。",
    "where": "每个词在看哪里",
    "words_shown": "显示的词",
    "match": "描述和图像相符吗？",
    "notes": "说明",
    "per_word": "逐词",
    "json": "JSON",
    "result": "结果",
    "download_json": "下载数据（JSON）",
    "tab_i2t": "图像 → 文本",
    "i2t_explain": "**点击一个区域**：那里的图块去查询描述；条形是它分给每个词的权重。其余的权重给了不是词的记号："
    "[CLS]（开头）、[SEP]（结尾）和标点。请先点“定位”。",
    "click_region": "点击一个区域",
    "patch_words": "这个图块关注的词",
    "x": "x（原图像素）",
    "y": "y",
    "words_at": "(x, y) 处的词",
    "patch": "图块",
    "tab_heads": "注意力头与层",
    "heads_explain": "一个词在每个融合层（行）和每个头（列）里的注意力，两个方向。各个头各有分工，平均把它们合起来。每张网格一个颜色刻度（最亮 = 其中的最大值）。",
    "word": "词",
    "t2i_explain": "**文本 → 图像**：这个词看向哪里（它在各图块上的那一行注意力）。",
    "i2t_grid_explain": "**图像 → 文本**：每个图块分给这个词的权重（每个图块在所有记号上的权重之和为 1）。",
    "maps": "注意力图",
    "tab_steps": "逐步计算",
    "tab_positions": "位置编码",
}

assert EN.keys() == ZH.keys(), sorted(EN.keys() ^ ZH.keys())

#: gradio resolves a browser's locale by its full code or its language: both are given
TRANSLATIONS = {"en": EN, "zh": ZH, "zh-CN": ZH, "zh-TW": ZH}
