<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="ru_RU">
<context>
    <name>EstimatePanel</name>
    <message>
        <source>Load a model to see the cost.</source>
        <translation>Загрузите модель, чтобы увидеть стоимость.</translation>
    </message>
    <message>
        <source>The model runs on the server; its memory is not counted here.</source>
        <translation>Модель работает на сервере; её память здесь не учитывается.</translation>
    </message>
    <message>
        <source>Fix the settings to see the cost.</source>
        <translation>Исправьте параметры, чтобы увидеть стоимость.</translation>
    </message>
    <message>
        <source>{n} prompt tokens, up to {m} new. </source>
        <translation>Токенов в затравке: {n}, новых — до {m}. </translation>
    </message>
    <message>
        <source>The model reads the last {k}: the text is longer than its context. </source>
        <translation>Модель прочтёт последние {k}: текст длиннее её контекста. </translation>
    </message>
    <message>
        <source>This does not fit in the free memory: Generate will refuse it.</source>
        <translation>Это не помещается в свободную память: генерация будет отклонена.</translation>
    </message>
</context>
<context>
    <name>ExplorerPanel</name>
    <message>
        <source>Cell {cell} of {total}</source>
        <translation>Ячейка {cell} из {total}</translation>
    </message>
    <message>
        <source>{done} of {total} cells</source>
        <translation>Готово ячеек: {done} из {total}</translation>
    </message>
    <message>
        <source>Failed: {reason}</source>
        <translation>Сбой: {reason}</translation>
    </message>
    <message>
        <source>not run</source>
        <translation>не запущена</translation>
    </message>
    <message>
        <source>Cell {cell} of {total} failed</source>
        <translation>Ячейка {cell} из {total}: сбой</translation>
    </message>
    <message>
        <source>waiting…</source>
        <translation>ожидает…</translation>
    </message>
    <message>
        <source>repeated 3-grams {rep}, distinct-2 {dist}, fluency {flu}, {words} words, {tps} tok/s</source>
        <translation>повторы троек слов {rep}, distinct-2 {dist}, беглость {flu}, слов: {words}, {tps} ток/с</translation>
    </message>
    <message>
        <source>Searching {n} settings…</source>
        <translation>Перебираю настроек: {n}…</translation>
    </message>
    <message>
        <source>Stopped.</source>
        <translation>Остановлено.</translation>
    </message>
    <message>
        <source>Save the heat map</source>
        <translation>Сохранить тепловую карту</translation>
    </message>
    <message>
        <source>Preset (preset)</source>
        <translation>Набор настроек (preset)</translation>
    </message>
    <message>
        <source>&amp;Prompt</source>
        <translation>&amp;Затравка</translation>
    </message>
    <message>
        <source>&amp;First setting</source>
        <translation>&amp;Первая настройка</translation>
    </message>
    <message>
        <source>Its &amp;values</source>
        <translation>Её &amp;значения</translation>
    </message>
    <message>
        <source>S&amp;econd setting</source>
        <translation>&amp;Вторая настройка</translation>
    </message>
    <message>
        <source>Its v&amp;alues</source>
        <translation>Её з&amp;начения</translation>
    </message>
    <message>
        <source>&amp;Seed</source>
        <translation>&amp;Seed</translation>
    </message>
    <message>
        <source>&amp;New tokens per cell</source>
        <translation>&amp;Новых токенов на ячейку</translation>
    </message>
    <message>
        <source>Explorer prompt</source>
        <translation>Затравка обозревателя</translation>
    </message>
    <message>
        <source>&amp;Run grid</source>
        <translation>&amp;Запустить сетку</translation>
    </message>
    <message>
        <source>S&amp;top</source>
        <translation>&amp;Стоп</translation>
    </message>
    <message>
        <source>&amp;Copy text</source>
        <translation>&amp;Копировать текст</translation>
    </message>
    <message>
        <source>&amp;Make current settings</source>
        <translation>&amp;Сделать текущими настройками</translation>
    </message>
    <message>
        <source>Save &amp;cell</source>
        <translation>Сохранить &amp;ячейку</translation>
    </message>
    <message>
        <source>Save &amp;grid to history</source>
        <translation>Сохранить сетку в &amp;историю</translation>
    </message>
    <message>
        <source>&amp;Heat map of</source>
        <translation>&amp;Тепловая карта</translation>
    </message>
    <message>
        <source>Measure shown in the heat map</source>
        <translation>Величина на тепловой карте</translation>
    </message>
    <message>
        <source>repeated word 3-grams (lower is better)</source>
        <translation>повторы троек слов (меньше — лучше)</translation>
    </message>
    <message>
        <source>distinct-2 (higher is more varied)</source>
        <translation>distinct-2 (больше — разнообразнее)</translation>
    </message>
    <message>
        <source>fluency: mean log-probability (higher is better)</source>
        <translation>беглость: средняя лог-вероятность (больше — лучше)</translation>
    </message>
    <message>
        <source>length in words</source>
        <translation>длина в словах</translation>
    </message>
    <message>
        <source>tokens per second</source>
        <translation>токенов в секунду</translation>
    </message>
    <message>
        <source>(none)</source>
        <translation>(нет)</translation>
    </message>
    <message>
        <source>P&amp;NG…</source>
        <translation>P&amp;NG…</translation>
    </message>
    <message>
        <source>S&amp;VG…</source>
        <translation>S&amp;VG…</translation>
    </message>
    <message>
        <source>Saved &amp;grids</source>
        <translation>Сохранённые &amp;сетки</translation>
    </message>
    <message>
        <source>Run &amp;again</source>
        <translation>&amp;Повторить</translation>
    </message>
    <message>
        <source>&amp;Goal for suggested settings</source>
        <translation>&amp;Цель для подбора настроек</translation>
    </message>
    <message>
        <source>Stay close to the prompt</source>
        <translation>Держаться ближе к затравке</translation>
    </message>
    <message>
        <source>A story</source>
        <translation>Рассказ</translation>
    </message>
    <message>
        <source>Varied, poem-like text</source>
        <translation>Разнообразный текст, как стихи</translation>
    </message>
    <message>
        <source>S&amp;uggest settings</source>
        <translation>&amp;Подобрать настройки</translation>
    </message>
    <message>
        <source>Use suggested settings</source>
        <translation>Применить подобранные настройки</translation>
    </message>
    <message>
        <source>Explorer grid: one generated text per cell with its figures</source>
        <translation>Сетка обозревателя: в каждой ячейке текст и его измерения</translation>
    </message>
    <message>
        <source>Heat map of the chosen measure over the grid</source>
        <translation>Тепловая карта выбранной величины по сетке</translation>
    </message>
    <message>
        <source>Suggested settings and the figures behind them</source>
        <translation>Подобранные настройки и цифры, на которых они основаны</translation>
    </message>
</context>
<context>
    <name>GenerationController</name>
    <message>
        <source>Stopping…</source>
        <extracomment>(history id, base prompt) of the text shown in the output, which Continue extends.</extracomment>
        <translation>Остановка…</translation>
    </message>
    <message>
        <source>Copied {n} characters.</source>
        <translation>Скопировано символов: {n}.</translation>
    </message>
    <message>
        <source>Stopped after {n} tokens.</source>
        <translation>Остановлено; токенов: {n}.</translation>
    </message>
</context>
<context>
    <name>GenerationView</name>
    <message>
        <source>Beam search, step {step}: the leading beam so far (score {score})</source>
        <extracomment>Alternatives asked of the engine for every generated token (the inspector shows them). Milliseconds between updates of the output while tokens stream: ~40 a second is smooth, and cheap at any speed, since a fast engine&apos;s tokens are shown in batches.</extracomment>
        <translation>Лучевой поиск, шаг {step}: лучший луч на сейчас (оценка {score})</translation>
    </message>
    <message>
        <source>Beam search ended: the best beams</source>
        <translation>Лучевой поиск завершён: лучшие лучи</translation>
    </message>
    <message>
        <source>&amp;Prompt (Ctrl+Enter generates, Esc stops):</source>
        <translation>&amp;Затравка (Ctrl+Enter — генерировать, Esc — остановить):</translation>
    </message>
    <message>
        <source>Type the beginning of a text, e.g. «Жили-были старик со старухой», and press Ctrl+Enter.</source>
        <translation>Введите начало текста, например «Жили-были старик со старухой», и нажмите Ctrl+Enter.</translation>
    </message>
    <message>
        <source>Prompt</source>
        <translation>Затравка</translation>
    </message>
    <message>
        <source>The text the model continues. Ctrl+Enter generates.</source>
        <translation>Текст, который продолжит модель. Ctrl+Enter запускает генерацию.</translation>
    </message>
    <message>
        <source>&amp;Output:</source>
        <translation>&amp;Результат:</translation>
    </message>
    <message>
        <source>&amp;Side by side</source>
        <translation>&amp;Рядом</translation>
    </message>
    <message>
        <source>Show the variants in columns next to each other, or one per tab</source>
        <translation>Показывать варианты колонками рядом друг с другом или по одному на вкладке</translation>
    </message>
    <message>
        <source>Co&amp;ntinue</source>
        <translation>Пр&amp;одолжить</translation>
    </message>
    <message>
        <source>Continue the shown text from where it stopped (Ctrl+Shift+Enter)</source>
        <translation>Продолжить показанный текст с места остановки (Ctrl+Shift+Enter)</translation>
    </message>
    <message>
        <source>Continue</source>
        <translation>Продолжить</translation>
    </message>
    <message>
        <source>&amp;Copy</source>
        <translation>&amp;Копировать</translation>
    </message>
    <message>
        <source>Copy the shown text to the clipboard (Ctrl+Shift+C)</source>
        <translation>Скопировать показанный текст в буфер обмена (Ctrl+Shift+C)</translation>
    </message>
    <message>
        <source>Copy output</source>
        <translation>Копировать результат</translation>
    </message>
    <message>
        <source>C&amp;lear</source>
        <translation>О&amp;чистить</translation>
    </message>
    <message>
        <source>Clear the output and the generated tokens (Ctrl+Shift+L)</source>
        <translation>Очистить результат и сгенерированные токены (Ctrl+Shift+L)</translation>
    </message>
    <message>
        <source>Clear output</source>
        <translation>Очистить результат</translation>
    </message>
    <message>
        <source>&amp;Stop</source>
        <translation>О&amp;становить</translation>
    </message>
    <message>
        <source>Stop generating (Esc)</source>
        <translation>Остановить генерацию (Esc)</translation>
    </message>
    <message>
        <source>Stop</source>
        <translation>Остановить</translation>
    </message>
    <message>
        <source>&amp;Generate</source>
        <translation>&amp;Сгенерировать</translation>
    </message>
    <message>
        <source>Continue the prompt with the model (Ctrl+Enter)</source>
        <translation>Продолжить затравку моделью (Ctrl+Enter)</translation>
    </message>
    <message>
        <source>Generate</source>
        <translation>Сгенерировать</translation>
    </message>
    <message>
        <source>The settings are invalid: see the Parameters panel</source>
        <translation>Параметры заданы неверно: см. панель «Параметры»</translation>
    </message>
</context>
<context>
    <name>HistoryActions</name>
    <message>
        <source>Generation #{id} of {when}, model {model}, seed {seed}.</source>
        <translation>Генерация №{id} от {when}, модель {model}, зерно {seed}.</translation>
    </message>
    <message>
        <source>Export history</source>
        <translation>Экспорт рассказа</translation>
    </message>
    <message>
        <source>Exported {n} generations to {path}.</source>
        <translation>Генераций экспортировано: {n}, файл {path}.</translation>
    </message>
</context>
<context>
    <name>HistoryKeeper</name>
    <message>
        <source>History is off</source>
        <extracomment>How long the GUI thread waits for another program&apos;s lock when storing a prompt: longer would freeze the window; a prompt that meets the lock is kept in memory and written by the retries. How long the recorder&apos;s own writes (off the GUI thread) wait for a lock before keeping the rest in memory: another GPT Desk holds it for milliseconds; longer would delay the end of a generation. Milliseconds between background attempts to reopen or write the history while it is off. Why history is not saving now (None: it is).</extracomment>
        <translation>История отключена</translation>
    </message>
    <message>
        <source>History is read-only</source>
        <translation>История только для чтения</translation>
    </message>
    <message>
        <source>History is locked</source>
        <translation>История заблокирована</translation>
    </message>
    <message>
        <source>History is not saving</source>
        <translation>История не сохраняется</translation>
    </message>
    <message>
        <source>{n} not saved</source>
        <translation>не сохранено: {n}</translation>
    </message>
    <message>
        <source>Past generations can still be browsed and searched.</source>
        <translation>Прошлые генерации по-прежнему можно просматривать и искать.</translation>
    </message>
    <message>
        <source>New generations are kept in memory and saved when the history can be written again (GPT Desk retries every few seconds). Export them to keep them in a file now.</source>
        <translation>Новые генерации хранятся в памяти и будут сохранены, когда историю снова можно будет записать (GPT Desk пробует каждые несколько секунд). Экспортируйте их, чтобы сохранить в файл уже сейчас.</translation>
    </message>
    <message>
        <source>&amp;Try again now</source>
        <translation>&amp;Повторить сейчас</translation>
    </message>
    <message>
        <source>&amp;Export generations not saved…</source>
        <translation>&amp;Экспортировать несохранённые генерации…</translation>
    </message>
    <message>
        <source>JSON (*.json)</source>
        <translation>JSON (*.json)</translation>
    </message>
    <message>
        <source>Markdown (*.md)</source>
        <translation>Markdown (*.md)</translation>
    </message>
    <message>
        <source>Export generations not saved in history</source>
        <translation>Экспорт генераций, не сохранённых в истории</translation>
    </message>
    <message>
        <source>Generations not saved</source>
        <translation>Генерации не сохранены</translation>
    </message>
    <message>
        <source>{n} generations could not be saved in history.</source>
        <translation>Не удалось сохранить в истории генераций: {n}.</translation>
    </message>
    <message>
        <source>Export them to a file before closing?</source>
        <translation>Экспортировать их в файл перед закрытием?</translation>
    </message>
    <message>
        <source>&amp;Export…</source>
        <translation>&amp;Экспортировать…</translation>
    </message>
    <message>
        <source>Close &amp;without saving</source>
        <translation>Закрыть &amp;без сохранения</translation>
    </message>
</context>
<context>
    <name>HistoryPanel</name>
    <message>
        <source>running</source>
        <translation>идёт</translation>
    </message>
    <message>
        <source>finished</source>
        <translation>готово</translation>
    </message>
    <message>
        <source>stopped</source>
        <translation>остановлено</translation>
    </message>
    <message>
        <source>failed</source>
        <translation>ошибка</translation>
    </message>
    <message>
        <source>interrupted</source>
        <translation>прервано</translation>
    </message>
    <message>
        <source>&amp;Search history:</source>
        <translation>&amp;Поиск по истории:</translation>
    </message>
    <message>
        <source>Words from the prompt, the text or the model</source>
        <translation>Слова из затравки, текста или имя модели</translation>
    </message>
    <message>
        <source>Search history</source>
        <translation>Поиск по истории</translation>
    </message>
    <message>
        <source>Past generations</source>
        <translation>Прошлые генерации</translation>
    </message>
    <message>
        <source>&amp;Open</source>
        <translation>&amp;Открыть</translation>
    </message>
    <message>
        <source>Show this generation&apos;s prompt, text and settings</source>
        <translation>Показать затравку, текст и параметры этой генерации</translation>
    </message>
    <message>
        <source>Open generation</source>
        <translation>Открыть генерацию</translation>
    </message>
    <message>
        <source>&amp;Reproduce</source>
        <translation>&amp;Повторить</translation>
    </message>
    <message>
        <source>Run it again with the same model, settings and seed</source>
        <translation>Запустить снова с той же моделью, параметрами и зерном</translation>
    </message>
    <message>
        <source>Reproduce generation</source>
        <translation>Повторить генерацию</translation>
    </message>
    <message>
        <source>E&amp;xport</source>
        <translation>&amp;Экспорт</translation>
    </message>
    <message>
        <source>Save one generation or the whole history to a file</source>
        <translation>Сохранить одну генерацию или всю историю в файл</translation>
    </message>
    <message>
        <source>Export</source>
        <translation>Экспорт</translation>
    </message>
    <message>
        <source>plain text</source>
        <translation>простой текст</translation>
    </message>
    <message>
        <source>This generation as {fmt}…</source>
        <translation>Эту генерацию в формате {fmt}…</translation>
    </message>
    <message>
        <source>All shown as {fmt}…</source>
        <translation>Все показанные в формате {fmt}…</translation>
    </message>
</context>
<context>
    <name>LabChart</name>
    <message>
        <source>raw (temperature 1, nothing cut)</source>
        <translation>исходная (температура 1, ничего не отсечено)</translation>
    </message>
    <message>
        <source>after the settings</source>
        <translation>после настроек</translation>
    </message>
    <message>
        <source>probability</source>
        <translation>вероятность</translation>
    </message>
</context>
<context>
    <name>LabFeature</name>
    <message>
        <source>&amp;Lab</source>
        <translation>&amp;Лаборатория</translation>
    </message>
    <message>
        <source>&amp;Next-token view of the prompt</source>
        <translation>&amp;Следующий токен после затравки</translation>
    </message>
    <message>
        <source>Next-token view of the selected &amp;token</source>
        <translation>Следующий токен в месте выбранного &amp;токена</translation>
    </message>
    <message>
        <source>Settings &amp;explorer</source>
        <translation>&amp;Обозреватель настроек</translation>
    </message>
    <message>
        <source>&amp;Suggest settings</source>
        <translation>&amp;Подобрать настройки</translation>
    </message>
</context>
<context>
    <name>LabWindow</name>
    <message>
        <source>Parameter lab — GPT Desk</source>
        <translation>Лаборатория параметров — GPT Desk</translation>
    </message>
    <message>
        <source>&amp;Next token</source>
        <translation>&amp;Следующий токен</translation>
    </message>
    <message>
        <source>&amp;Explorer</source>
        <translation>&amp;Обозреватель</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>GPT Desk</source>
        <extracomment>Tools &gt; Kept cache: -1 is automatic (one full context of the model), 0 keeps nothing.</extracomment>
        <translation>GPT Desk</translation>
    </message>
    <message>
        <source>Co&amp;ntinue</source>
        <translation>Пр&amp;одолжить</translation>
    </message>
    <message>
        <source>Parameters</source>
        <translation>Параметры</translation>
    </message>
    <message>
        <source>Tokens</source>
        <translation>Токены</translation>
    </message>
    <message>
        <source>History</source>
        <translation>История</translation>
    </message>
    <message>
        <source>&amp;File</source>
        <translation>&amp;Файл</translation>
    </message>
    <message>
        <source>&amp;Export all history</source>
        <translation>&amp;Экспорт всей истории</translation>
    </message>
    <message>
        <source>&amp;Generation</source>
        <translation>&amp;Генерация</translation>
    </message>
    <message>
        <source>&amp;View</source>
        <translation>&amp;Вид</translation>
    </message>
    <message>
        <source>&amp;Language</source>
        <translation>&amp;Язык</translation>
    </message>
    <message>
        <source>&amp;Tools</source>
        <translation>&amp;Инструменты</translation>
    </message>
    <message>
        <source>How well does this model know my text?…</source>
        <translation>Насколько модель знает мой текст?…</translation>
    </message>
    <message>
        <source>llama.cpp &amp;type (speed against quality)</source>
        <translation>&amp;Тип весов llama.cpp (скорость против качества)</translation>
    </message>
    <message>
        <source>llama.cpp t&amp;hreads</source>
        <translation>П&amp;отоки llama.cpp</translation>
    </message>
    <message>
        <source>Automatic: one per core ({n})</source>
        <translation>Автоматически: по одному на ядро ({n})</translation>
    </message>
    <message>
        <source>Threads: {n}</source>
        <translation>Потоков: {n}</translation>
    </message>
    <message>
        <source>Fewer threads than cores help when other programs keep the processor busy: a llama.cpp thread that waits for one the system has paused holds up every step.</source>
        <translation>Меньше потоков, чем ядер, помогает, когда процессор занят другими программами: поток llama.cpp, который ждёт приостановленного системой соседа, задерживает каждый шаг.</translation>
    </message>
    <message>
        <source>&amp;Teach the model my texts…</source>
        <translation>&amp;Обучить модель на моих текстах…</translation>
    </message>
    <message>
        <source>&amp;Adapter (taught on your texts)</source>
        <translation>&amp;Адаптер (обучен на ваших текстах)</translation>
    </message>
    <message>
        <source>Kept &amp;cache (continuing without waiting)</source>
        <translation>Хранимый &amp;кэш (продолжение без ожидания)</translation>
    </message>
    <message>
        <source>llama.cpp keeps the model&apos;s state for the texts it has just read, so Continue, Reproduce and a second variant start at once. Each kept token costs memory ({mb} MB per 1,000 tokens for the loaded model); the least recently used texts go first.</source>
        <translation>llama.cpp хранит состояние модели для только что прочитанных текстов, поэтому «Продолжить», «Повторить» и второй вариант начинаются сразу. Каждый хранимый токен занимает память ({mb} МБ на 1000 токенов у загруженной модели); первыми вытесняются тексты, которые дольше всего не использовались.</translation>
    </message>
    <message>
        <source>Automatic: one full context of the model</source>
        <translation>Автоматически: один полный контекст модели</translation>
    </message>
    <message>
        <source>Off: read the whole text every time</source>
        <translation>Выключен: каждый раз читать весь текст</translation>
    </message>
    <message>
        <source>Up to {n} tokens</source>
        <translation>До {n} токенов</translation>
    </message>
    <message>
        <source>&amp;Generate</source>
        <translation>&amp;Сгенерировать</translation>
    </message>
    <message>
        <source>&amp;Stop</source>
        <translation>О&amp;становить</translation>
    </message>
    <message>
        <source>&amp;Copy output</source>
        <translation>&amp;Копировать результат</translation>
    </message>
    <message>
        <source>C&amp;lear output</source>
        <translation>О&amp;чистить результат</translation>
    </message>
    <message>
        <source>&amp;Open model folder…</source>
        <translation>&amp;Открыть папку модели…</translation>
    </message>
    <message>
        <source>Connect to a &amp;remote server…</source>
        <translation>Подключиться к &amp;удалённому серверу…</translation>
    </message>
    <message>
        <source>&amp;Models: download and manage…</source>
        <translation>&amp;Модели: загрузка и управление…</translation>
    </message>
    <message>
        <source>&amp;Quit</source>
        <translation>&amp;Выход</translation>
    </message>
    <message>
        <source>Go to the &amp;prompt</source>
        <translation>Перейти к &amp;затравке</translation>
    </message>
    <message>
        <source>Go to the &amp;model list</source>
        <translation>Перейти к списку &amp;моделей</translation>
    </message>
    <message>
        <source>&amp;Search history</source>
        <translation>&amp;Поиск по истории</translation>
    </message>
    <message>
        <source>plain text</source>
        <translation>простой текст</translation>
    </message>
    <message>
        <source>As {fmt}…</source>
        <translation>В формате {fmt}…</translation>
    </message>
    <message>
        <source>None: the model as it is</source>
        <translation>Нет: модель как есть</translation>
    </message>
    <message>
        <source>Taught on {files}: held-out bits per character {before:.3f} → {after:.3f}</source>
        <translation>Обучен на {files}: бит на символ отложенного текста {before:.3f} → {after:.3f}</translation>
    </message>
    <message>
        <source>No adapters for this model: make one with `gptdesk tune`</source>
        <translation>Для этой модели адаптеров нет: создайте его командой `gptdesk tune`</translation>
    </message>
</context>
<context>
    <name>MessageBar</name>
    <message>
        <source>Message</source>
        <translation>Сообщение</translation>
    </message>
    <message>
        <source>Dismiss the message</source>
        <translation>Закрыть сообщение</translation>
    </message>
</context>
<context>
    <name>ModelLoader</name>
    <message>
        <source>Choose a model folder</source>
        <translation>Выберите папку модели</translation>
    </message>
</context>
<context>
    <name>ModelPicker</name>
    <message>
        <source>works offline</source>
        <translation>работает без сети</translation>
    </message>
    <message>
        <source>on this computer</source>
        <translation>на этом компьютере</translation>
    </message>
    <message>
        <source>download {size}</source>
        <translation>скачать {size}</translation>
    </message>
    <message>
        <source>Open folder…</source>
        <translation>Открыть папку…</translation>
    </message>
    <message>
        <source>Load a GPT-2 model saved in a folder on this computer</source>
        <translation>Загрузить модель GPT-2 из папки на этом компьютере</translation>
    </message>
    <message>
        <source>Remote server…</source>
        <translation>Удалённый сервер…</translation>
    </message>
    <message>
        <source>Use a model on an OpenAI-compatible server (vLLM, llama.cpp, Ollama, GPT Desk)</source>
        <translation>Использовать модель на сервере, совместимом с OpenAI (vLLM, llama.cpp, Ollama, GPT Desk)</translation>
    </message>
    <message>
        <source>&amp;Model:</source>
        <translation>&amp;Модель:</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>Модель</translation>
    </message>
    <message>
        <source>The model that writes the text; choosing another loads it</source>
        <translation>Модель, которая пишет текст; выбор другой загружает её</translation>
    </message>
</context>
<context>
    <name>NextTokenPanel</name>
    <message>
        <source>Reading the model&apos;s scores…</source>
        <extracomment>Knobs the view moves live: (settings field, minimum, maximum, step, decimals).</extracomment>
        <translation>Считываю оценки модели…</translation>
    </message>
    <message>
        <source> (penalized)</source>
        <translation> (оштрафован)</translation>
    </message>
    <message>
        <source>in play</source>
        <translation>в игре</translation>
    </message>
    <message>
        <source>cut by top-k</source>
        <translation>отсечён top-k</translation>
    </message>
    <message>
        <source>cut by top-p</source>
        <translation>отсечён top-p</translation>
    </message>
    <message>
        <source>banned: would repeat an n-gram</source>
        <translation>запрещён: повторил бы n-грамму</translation>
    </message>
    <message>
        <source>banned: text shorter than the minimum</source>
        <translation>запрещён: текст короче минимума</translation>
    </message>
    <message>
        <source>not the greedy choice</source>
        <translation>не жадный выбор</translation>
    </message>
    <message>
        <source>Open the view on the prompt or on a generated token.</source>
        <translation>Откройте окно на затравке или на сгенерированном токене.</translation>
    </message>
    <message>
        <source>Next token after: “{text}” ({n} tokens)</source>
        <translation>Следующий токен после: «{text}» (токенов: {n})</translation>
    </message>
    <message>
        <source>Entropy: {entropy:.2f} bits (raw {raw:.2f})
Tokens in play: {n}
Probability mass kept: {mass}
Greedy choice: “{piece}” at {p}</source>
        <translation>Энтропия: {entropy:.2f} бит (исходная {raw:.2f})
Токенов в игре: {n}
Сохранённая масса вероятности: {mass}
Жадный выбор: «{piece}» с {p}</translation>
    </message>
    <message>
        <source>Sampling is off: temperature, top-k and top-p change nothing. The model always takes the most likely token.</source>
        <translation>Сэмплирование выключено: температура, top-k и top-p ничего не меняют. Модель всегда берёт самый вероятный токен.</translation>
    </message>
    <message>
        <source>With {n} beams the model keeps the {n} continuations with the best total log-probability and extends each; shown are the probabilities after penalties and bans that the beams add up.</source>
        <translation>С {n} лучами модель хранит {n} продолжений с лучшей суммарной лог-вероятностью и продлевает каждое; показаны вероятности после штрафов и запретов, которые лучи складывают.</translation>
    </message>
    <message>
        <source>Save the chart</source>
        <translation>Сохранить график</translation>
    </message>
    <message>
        <source>Sampling (do_sample)</source>
        <translation>Сэмплирование (do_sample)</translation>
    </message>
    <message>
        <source>&amp;Temperature</source>
        <translation>&amp;Температура</translation>
    </message>
    <message>
        <source>Top-&amp;k</source>
        <translation>Top-&amp;k</translation>
    </message>
    <message>
        <source>Top-&amp;p</source>
        <translation>Top-&amp;p</translation>
    </message>
    <message>
        <source>&amp;Repetition penalty</source>
        <translation>&amp;Штраф за повторы</translation>
    </message>
    <message>
        <source>Save as P&amp;NG…</source>
        <translation>Сохранить в P&amp;NG…</translation>
    </message>
    <message>
        <source>Save as S&amp;VG…</source>
        <translation>Сохранить в S&amp;VG…</translation>
    </message>
    <message>
        <source>Next-token chart</source>
        <translation>График следующего токена</translation>
    </message>
    <message>
        <source>Bars of the top candidates: raw probability beside the probability after the settings</source>
        <translation>Столбцы лучших кандидатов: исходная вероятность рядом с вероятностью после настроек</translation>
    </message>
    <message>
        <source>Next-token candidates</source>
        <translation>Кандидаты на следующий токен</translation>
    </message>
    <message>
        <source>Token</source>
        <translation>Токен</translation>
    </message>
    <message>
        <source>Raw</source>
        <translation>Исходная</translation>
    </message>
    <message>
        <source>After settings</source>
        <translation>После настроек</translation>
    </message>
    <message>
        <source>What the settings did</source>
        <translation>Что сделали настройки</translation>
    </message>
    <message>
        <source>Next-token figures</source>
        <translation>Цифры следующего токена</translation>
    </message>
</context>
<context>
    <name>OutputPane</name>
    <message>
        <source>Output</source>
        <extracomment>The same variants side by side; every change is written there too.</extracomment>
        <translation>Результат</translation>
    </message>
    <message>
        <source>Variant {n}</source>
        <translation>Вариант {n}</translation>
    </message>
    <message>
        <source>Generated text</source>
        <translation>Сгенерированный текст</translation>
    </message>
    <message>
        <source>The prompt in grey, then the text the model wrote</source>
        <translation>Затравка серым, затем текст, написанный моделью</translation>
    </message>
    <message>
        <source>The generated text appears here as the model writes it.</source>
        <translation>Здесь появляется текст по мере того, как модель его пишет.</translation>
    </message>
</context>
<context>
    <name>ParametersPanel</name>
    <message>
        <source>&amp;Preset:</source>
        <extracomment>Fields in the order they are shown, with the kind of editor each gets.</extracomment>
        <translation>&amp;Набор настроек:</translation>
    </message>
    <message>
        <source>Custom</source>
        <translation>Свои значения</translation>
    </message>
    <message>
        <source>Your own values</source>
        <translation>Ваши собственные значения</translation>
    </message>
    <message>
        <source>Preset</source>
        <translation>Набор настроек</translation>
    </message>
    <message>
        <source>Estimated cost:</source>
        <translation>Оценка затрат:</translation>
    </message>
</context>
<context>
    <name>PerplexityDialog</name>
    <message>
        <source>How well does this model know my text?</source>
        <translation>Насколько модель знает мой текст?</translation>
    </message>
    <message>
        <source>&amp;Text (type, paste, or open a UTF-8 file):</source>
        <translation>&amp;Текст (введите, вставьте или откройте файл в UTF-8):</translation>
    </message>
    <message>
        <source>&amp;Open file…</source>
        <translation>&amp;Открыть файл…</translation>
    </message>
    <message>
        <source>Model:</source>
        <translation>Модель:</translation>
    </message>
    <message>
        <source>the embedded model</source>
        <translation>встроенная модель</translation>
    </message>
    <message>
        <source>Engine:</source>
        <translation>Движок:</translation>
    </message>
    <message>
        <source>llama.cpp type:</source>
        <translation>Тип llama.cpp:</translation>
    </message>
    <message>
        <source>Window (tokens):</source>
        <translation>Окно (токенов):</translation>
    </message>
    <message>
        <source>the model&apos;s context</source>
        <translation>контекст модели</translation>
    </message>
    <message>
        <source>Windows move by half of this; 0 uses the model&apos;s whole context.</source>
        <translation>Окна сдвигаются на половину; 0 — весь контекст модели.</translation>
    </message>
    <message>
        <source>&amp;Measure</source>
        <translation>&amp;Измерить</translation>
    </message>
    <message>
        <source>&amp;Stop</source>
        <translation>О&amp;становить</translation>
    </message>
    <message>
        <source>Close</source>
        <translation>Закрыть</translation>
    </message>
    <message>
        <source>Lower is better.</source>
        <translation>Чем меньше, тем лучше.</translation>
    </message>
    <message>
        <source>Open a text file</source>
        <translation>Открыть текстовый файл</translation>
    </message>
    <message>
        <source>Text (*.txt);;All files (*)</source>
        <translation>Текст (*.txt);;Все файлы (*)</translation>
    </message>
</context>
<context>
    <name>RemoteDialog</name>
    <message>
        <source>The URL must start with http:// or https://</source>
        <translation>Адрес должен начинаться с http:// или https://</translation>
    </message>
    <message>
        <source>Remote server</source>
        <translation>Удалённый сервер</translation>
    </message>
    <message>
        <source>Connect to a server that speaks the OpenAI completions protocol: vLLM, TGI, llama.cpp server, Ollama or another GPT Desk.</source>
        <translation>Подключение к серверу с протоколом OpenAI completions: vLLM, TGI, сервер llama.cpp, Ollama или другой GPT Desk.</translation>
    </message>
    <message>
        <source>Server &amp;URL:</source>
        <translation>&amp;Адрес сервера:</translation>
    </message>
    <message>
        <source>M&amp;odel (empty: the server&apos;s default):</source>
        <translation>М&amp;одель (пусто — по умолчанию на сервере):</translation>
    </message>
    <message>
        <source>API &amp;key (optional):</source>
        <translation>&amp;Ключ API (необязательно):</translation>
    </message>
    <message>
        <source>Server URL</source>
        <translation>Адрес сервера</translation>
    </message>
    <message>
        <source>Model name on the server</source>
        <translation>Имя модели на сервере</translation>
    </message>
    <message>
        <source>API key</source>
        <translation>Ключ API</translation>
    </message>
</context>
<context>
    <name>StatusFigures</name>
    <message>
        <source>Tokens: {n}</source>
        <translation>Токенов: {n}</translation>
    </message>
    <message>
        <source>{v} tok/s</source>
        <translation>{v} ток/с</translation>
    </message>
    <message>
        <source>First token: {s} s</source>
        <translation>Первый токен: {s} с</translation>
    </message>
    <message>
        <source>Model: loading…</source>
        <translation>Модель: загрузка…</translation>
    </message>
    <message>
        <source>Model: none</source>
        <translation>Модель: нет</translation>
    </message>
    <message>
        <source>Model: {name}</source>
        <translation>Модель: {name}</translation>
    </message>
    <message>
        <source>Model: {name} + adapter {adapter}</source>
        <translation>Модель: {name} + адаптер {adapter}</translation>
    </message>
    <message>
        <source>Device: {device}</source>
        <translation>Устройство: {device}</translation>
    </message>
    <message>
        <source>RAM: {size}</source>
        <translation>ОЗУ: {size}</translation>
    </message>
    <message>
        <source>Loading {model}…</source>
        <translation>Загрузка {model}…</translation>
    </message>
    <message>
        <source>The model in use</source>
        <translation>Используемая модель</translation>
    </message>
    <message>
        <source>Where it runs</source>
        <translation>Где она работает</translation>
    </message>
    <message>
        <source>Number format of the weights</source>
        <translation>Формат чисел весов</translation>
    </message>
    <message>
        <source>Memory used by GPT Desk</source>
        <translation>Память, занятая GPT Desk</translation>
    </message>
    <message>
        <source>Tokens per second while generating</source>
        <translation>Токенов в секунду во время генерации</translation>
    </message>
    <message>
        <source>Time to the first token</source>
        <translation>Время до первого токена</translation>
    </message>
    <message>
        <source>Tokens generated so far</source>
        <translation>Сгенерировано токенов</translation>
    </message>
    <message>
        <source>Model loading progress</source>
        <translation>Ход загрузки модели</translation>
    </message>
</context>
<context>
    <name>StoryFeature</name>
    <message>
        <source>St&amp;ory</source>
        <translation>Р&amp;ассказ</translation>
    </message>
    <message>
        <source>&amp;New story from the prompt</source>
        <translation>&amp;Новый рассказ из затравки</translation>
    </message>
    <message>
        <source>&amp;Stories…</source>
        <translation>&amp;Рассказы…</translation>
    </message>
</context>
<context>
    <name>StoryPanel</name>
    <message>
        <source>Alternatives for “{piece}”</source>
        <translation>Альтернативы для «{piece}»</translation>
    </message>
    <message>
        <source>Load a model first.</source>
        <translation>Сначала загрузите модель.</translation>
    </message>
    <message>
        <source>Generating… (Esc stops)</source>
        <translation>Генерация… (Esc — остановить)</translation>
    </message>
    <message>
        <source>Stopped.</source>
        <translation>Остановлено.</translation>
    </message>
    <message>
        <source>Made {n} node(s).</source>
        <translation>Создано узлов: {n}.</translation>
    </message>
    <message>
        <source>Export the story</source>
        <translation>Экспорт рассказа</translation>
    </message>
    <message>
        <source>Import a story</source>
        <translation>Импорт рассказа</translation>
    </message>
    <message>
        <source>&amp;Story</source>
        <translation>&amp;Рассказ</translation>
    </message>
    <message>
        <source>&amp;Grow the current node</source>
        <translation>&amp;Нарастить текущий узел</translation>
    </message>
    <message>
        <source>Generate &amp;N continuations</source>
        <translation>Сгенерировать &amp;N продолжений</translation>
    </message>
    <message>
        <source>&amp;Stop</source>
        <translation>О&amp;становить</translation>
    </message>
    <message>
        <source>&amp;Previous sibling</source>
        <translation>&amp;Предыдущий соседний узел</translation>
    </message>
    <message>
        <source>Ne&amp;xt sibling</source>
        <translation>С&amp;ледующий соседний узел</translation>
    </message>
    <message>
        <source>&amp;Parent</source>
        <translation>&amp;Родитель</translation>
    </message>
    <message>
        <source>&amp;Child</source>
        <translation>&amp;Потомок</translation>
    </message>
    <message>
        <source>Make the &amp;edit a branch</source>
        <translation>Сделать &amp;правку ветвью</translation>
    </message>
    <message>
        <source>&amp;Bookmark the node</source>
        <translation>&amp;Закладка на узле</translation>
    </message>
    <message>
        <source>Export the path as &amp;text…</source>
        <translation>Экспорт пути в &amp;текст…</translation>
    </message>
    <message>
        <source>Export the path as &amp;Markdown…</source>
        <translation>Экспорт пути в &amp;Markdown…</translation>
    </message>
    <message>
        <source>Export the tree as &amp;JSON…</source>
        <translation>Экспорт дерева в &amp;JSON…</translation>
    </message>
    <message>
        <source>&amp;Import a story…</source>
        <translation>&amp;Импорт рассказа…</translation>
    </message>
    <message>
        <source>Generate N continuations</source>
        <translation>Сгенерировать N продолжений</translation>
    </message>
    <message>
        <source>Opening</source>
        <translation>Начало</translation>
    </message>
    <message>
        <source>Mean log-prob</source>
        <translation>Средняя лог-вероятность</translation>
    </message>
    <message>
        <source>Marks</source>
        <translation>Отметки</translation>
    </message>
    <message>
        <source>Alternatives (hover or click a generated token)</source>
        <translation>Альтернативы (наведите на сгенерированный токен или щёлкните его)</translation>
    </message>
    <message>
        <source>Story text</source>
        <translation>Текст рассказа</translation>
    </message>
    <message>
        <source>The current path; generated tokens are shaded by probability; edit to branch</source>
        <translation>Текущий путь; сгенерированные токены окрашены по вероятности; правка создаёт ветвь</translation>
    </message>
    <message>
        <source>Alternatives of a token; choose one to branch</source>
        <translation>Альтернативы токена; выберите одну, чтобы начать ветвь</translation>
    </message>
    <message>
        <source>Continuations side by side</source>
        <translation>Продолжения рядом</translation>
    </message>
    <message>
        <source>Story tree</source>
        <translation>Дерево рассказа</translation>
    </message>
    <message>
        <source>Number of continuations</source>
        <translation>Число продолжений</translation>
    </message>
</context>
<context>
    <name>StoryWindow</name>
    <message>
        <source>Story — GPT Desk</source>
        <translation>Рассказ — GPT Desk</translation>
    </message>
    <message>
        <source>Story</source>
        <translation>Рассказ</translation>
    </message>
</context>
<context>
    <name>TeachDialog</name>
    <message>
        <source>Texts to teach the model</source>
        <translation>Тексты для обучения модели</translation>
    </message>
    <message>
        <source>Held-out bits per character: {before:.4f} before, {after:.4f} after ({gain:+.1f}% lower)</source>
        <translation>Бит на символ проверочного текста: {before:.4f} до, {after:.4f} после (ниже на {gain:+.1f}%)</translation>
    </message>
    <message>
        <source>Teach the model my texts — GPT Desk</source>
        <translation>Обучить модель на моих текстах — GPT Desk</translation>
    </message>
    <message>
        <source>&amp;Texts</source>
        <translation>&amp;Тексты</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>Модель</translation>
    </message>
    <message>
        <source>Adapter &amp;name</source>
        <translation>&amp;Имя адаптера</translation>
    </message>
    <message>
        <source>Time &amp;budget, minutes</source>
        <translation>&amp;Время, минут</translation>
    </message>
    <message>
        <source>&amp;Add files…</source>
        <translation>&amp;Добавить файлы…</translation>
    </message>
    <message>
        <source>&amp;Remove</source>
        <translation>&amp;Убрать</translation>
    </message>
    <message>
        <source>T&amp;each</source>
        <translation>&amp;Обучить</translation>
    </message>
    <message>
        <source>S&amp;top</source>
        <translation>&amp;Стоп</translation>
    </message>
    <message>
        <source>&amp;Use this adapter</source>
        <translation>&amp;Применить этот адаптер</translation>
    </message>
    <message>
        <source>Without the adapter (seed {seed})</source>
        <translation>Без адаптера (зерно {seed})</translation>
    </message>
    <message>
        <source>With the adapter (same prompt and seed)</source>
        <translation>С адаптером (та же затравка и зерно)</translation>
    </message>
    <message>
        <source>loss</source>
        <translation>потери</translation>
    </message>
    <message>
        <source>step</source>
        <translation>шаг</translation>
    </message>
    <message>
        <source>training loss</source>
        <translation>потери обучения</translation>
    </message>
    <message>
        <source>held-out loss</source>
        <translation>потери на проверке</translation>
    </message>
</context>
<context>
    <name>TokenInspector</name>
    <message>
        <source>Prompt tokens: {n}</source>
        <translation>Токены затравки: {n}</translation>
    </message>
    <message>
        <source>Generated tokens: {n} (variant {k}); colour shows probability</source>
        <translation>Сгенерированные токены: {n} (вариант {k}); цвет показывает вероятность</translation>
    </message>
    <message>
        <source>Top alternatives (click a generated token)</source>
        <translation>Лучшие альтернативы (щёлкните сгенерированный токен)</translation>
    </message>
    <message>
        <source>Top alternatives for “{piece}”</source>
        <translation>Лучшие альтернативы для «{piece}»</translation>
    </message>
    <message>
        <source>probability</source>
        <translation>вероятность</translation>
    </message>
    <message>
        <source>alternatives</source>
        <translation>альтернативы</translation>
    </message>
    <message>
        <source>Prompt tokens</source>
        <translation>Токены затравки</translation>
    </message>
    <message>
        <source>Each token of the prompt with its id</source>
        <translation>Каждый токен затравки с его номером</translation>
    </message>
    <message>
        <source>Generated tokens</source>
        <translation>Сгенерированные токены</translation>
    </message>
    <message>
        <source>Each generated token shaded by its probability; select one to see the alternatives</source>
        <translation>Каждый сгенерированный токен окрашен по вероятности; выберите токен, чтобы увидеть альтернативы</translation>
    </message>
    <message>
        <source>Top alternatives</source>
        <translation>Лучшие альтернативы</translation>
    </message>
    <message>
        <source>Token</source>
        <translation>Токен</translation>
    </message>
    <message>
        <source>Probability</source>
        <translation>Вероятность</translation>
    </message>
</context>
<context>
    <name>VariantColumns</name>
    <message>
        <source>Variants side by side</source>
        <translation>Варианты рядом</translation>
    </message>
    <message>
        <source>Variant {n}</source>
        <translation>Вариант {n}</translation>
    </message>
    <message>
        <source>The prompt in grey, then the text the model wrote</source>
        <translation>Затравка серым, затем текст, написанный моделью</translation>
    </message>
</context>
</TS>
