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
    "steps_explain": "Scaled dot-product attention of **one head**, recomputed with the model's own weights from the layer's "
    "inputs, on your caption and picture. Think of a library: a **query** (Q) is what you look for, a **key** (K) the title on "
    "a book's spine, a **value** (V) the book's content. **1.** match every query with every key (S = Q·Kᵀ), **2.** scale "
    "(÷√d) and **3.** softmax each row (weights that sum to 1), **4.** read: the weighted sum of V; then the heads are put "
    "side by side and mixed by out_proj. Text → image: the queries are the caption's tokens, the keys and values the image's "
    "patches; image → text: the other way round. Hover any cell: its value and the formula with its numbers.",
    "steps_layer": "Layer",
    "steps_head": "Head",
    "t2i": "text → image",
    "i2t": "image → text",
    "direction": "Direction",
    "stage": "Stage",
    "stage_info": "walk the stages in order; your word's row is outlined",
    "why_scale": "**Why ÷√d?** Your word's row of scores through softmax without ÷√d (left) and with it (right): without it, "
    "the largest dot products swamp the rest and softmax turns into a hard choice. Raise the temperature to flatten the "
    "weights further, lower it to sharpen them.",
    "temperature": "Temperature",
    "temperature_info": "softmax(S / √d / temperature): 1 = what the model does",
    "stage_pictures": "**All stages at a glance**, then your word through the stages on the picture:",
    "stages": "Stages",
    "heads_against": "**One head against several**: the word's map in every head of the layer, and their mean (one shared colour scale).",
    "checks": "Shapes and checks",
    "positions_explain": "Attention alone ignores order and place. Sinusoids PE(pos, 2i) = sin(pos/10000^(2i/d)), PE(pos, 2i+1) = "
    "cos(…) give each position its own vector in [-1, 1]; PE·PEᵀ depends only on |i − j| (constant diagonals). Hover a cell "
    "for the formula with its numbers.",
    "pos_n": "positions n",
    "pos_dim": "dimension d",
    "pos_list": "positions",
    "pos_list_placeholder": "e.g. 0, 1, 10",
    "grid_explain": "Images use 2-D encodings: half the channels encode the patch's row, half its column. Pick a patch: the "
    "colour is how similar every other patch's encoding is to it.",
    "pos_row": "patch row",
    "pos_col": "patch column",
    "grid_img": "2-D encoding: cosine similarity of every patch to the outlined one",
    "pos_off": "Experiment: positions off",
    "pos_off_explain": "What do the positions add? Ground your own caption and picture again with the positional encodings "
    "removed from both encoders (the same weights otherwise): which words' maps move, and can the model still tell "
    "“left of” from “right of”?",
    "pos_off_button": "Ground again without positions",
    "pos_off_picture": "Without positions: the words found with them",
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
    "steps_explain": "**一个注意力头**的缩放点积注意力，用模型自己的权重、从这一层的输入在你的描述和图片上重新算一遍。"
    "把它想成图书馆：**查询**（Q）是你要找的东西，**键**（K）是书脊上的书名，**值**（V）是书的内容。**1.** 把每个查询和每个键比较"
    "（S = Q·Kᵀ），**2.** 缩放（÷√d），**3.** 每行做 softmax（权重之和为 1），**4.** 读取：V 的加权和；然后把各个头并排，"
    "再由 out_proj 混合。文本 → 图像：查询是描述的词元，键和值是图像块；图像 → 文本则反过来。把鼠标放到任一格上：显示数值和带数字的公式。",
    "steps_layer": "层",
    "steps_head": "头",
    "t2i": "文本 → 图像",
    "i2t": "图像 → 文本",
    "direction": "方向",
    "stage": "步骤",
    "stage_info": "按顺序走一遍；你所选词的那一行有框线",
    "why_scale": "**为什么要 ÷√d？** 你所选词的那一行分数，不除以 √d（左）和除以 √d（右）之后做 softmax："
    "不除的话，最大的几个点积压倒其余，softmax 变成硬选择。调高温度让权重更平，调低让它更尖。",
    "temperature": "温度",
    "temperature_info": "softmax(S / √d / 温度)：1 = 模型实际的做法",
    "stage_pictures": "**所有步骤一览**，然后是你所选的词在图片上经过各个步骤：",
    "stages": "步骤",
    "heads_against": "**一个头对比多个头**：这个词在这一层每个头里的注意力图，以及它们的平均（同一个颜色刻度）。",
    "checks": "形状与校验",
    "positions_explain": "只有注意力的话，模型不知道顺序和位置。正弦编码 PE(pos, 2i) = sin(pos/10000^(2i/d))，PE(pos, 2i+1) = "
    "cos(…) 给每个位置一个 [-1, 1] 之间的独特向量；PE·PEᵀ 只取决于 |i − j|（对角线上数值不变）。把鼠标放到格子上看带数字的公式。",
    "pos_n": "位置数 n",
    "pos_dim": "维度 d",
    "pos_list": "位置",
    "pos_list_placeholder": "例如 0, 1, 10",
    "grid_explain": "图像用二维编码：一半通道编码图像块所在的行，一半编码列。选一个图像块：颜色表示其他图像块的编码和它有多相似。",
    "pos_row": "图像块行",
    "pos_col": "图像块列",
    "grid_img": "二维编码：每个图像块与框出的那个的余弦相似度",
    "pos_off": "实验：去掉位置编码",
    "pos_off_explain": "位置编码到底加了什么？把你的描述和图片在两个编码器都去掉位置编码后再定位一次（其余权重不变）："
    "哪些词的注意力图移动了？模型还分得清“左边”和“右边”吗？",
    "pos_off_button": "去掉位置编码再定位一次",
    "pos_off_picture": "去掉位置编码后：有位置编码时找到的词",
}

assert EN.keys() == ZH.keys(), sorted(EN.keys() ^ ZH.keys())

#: gradio resolves a browser's locale by its full code or its language: both are given
TRANSLATIONS = {"en": EN, "zh": ZH, "zh-CN": ZH, "zh-TW": ZH}
