"""Every text of the console, in one catalog: the English text is the key, Russian its value.

Russian is the default language; English is chosen with the switch in the header (a cookie).
A test checks that every text the templates and the app use has its Russian here.
"""

from __future__ import annotations

from ivr.console.i18n_analytics import RU_ANALYTICS

LANGUAGES = ("ru", "en")
DEFAULT = "ru"

RU: dict[str, str] = {
    # frame
    "IVR rating console": "Консоль IVR-опроса",
    "Now": "Сейчас",
    "Settings": "Настройки",
    "Do-not-call": "Не звонить",
    "Dead letters": "Недоставленные",
    "Users": "Пользователи",
    "Audit log": "Журнал изменений",
    "Sign out": "Выйти",
    "Sign in": "Войти",
    "User name": "Имя пользователя",
    "Password": "Пароль",
    "Wrong user name or password.": "Неверное имя пользователя или пароль.",
    "Too many failed attempts; try again in {s} s.": "Слишком много неудачных попыток; "
    "повторите через {s} с.",
    "Calling is PAUSED by {by} since {since}: {reason}": "Обзвон ПРИОСТАНОВЛЕН ({by}) с {since}: "
    "{reason}",
    "Calling is running.": "Обзвон идёт.",
    "You may not do this.": "У вас нет прав на это действие.",
    "The form has expired; reload the page and try again.": "Форма устарела; обновите страницу "
    "и повторите.",
    "Not found.": "Не найдено.",
    "role": "роль",
    "viewer": "наблюдатель",
    "operator": "оператор",
    "admin": "администратор",
    # now
    "Calls in progress": "Звонки сейчас",
    "No call in progress.": "Звонков сейчас нет.",
    "Phone": "Телефон",
    "Node": "Узел",
    "State": "Состояние",
    "Seconds": "Секунд",
    "ringing": "вызов",
    "answered": "разговор",
    "Today": "Сегодня",
    "Done": "Завершено",
    "Due now": "К звонку сейчас",
    "Waiting for a retry": "Ждут повторного звонка",
    "next at": "следующий в",
    "Estimated finish": "Ожидаемое окончание",
    "unknown yet": "пока неизвестно",
    "Call window": "Окно звонков",
    "open until {t}": "открыто до {t}",
    "closed; next opens {t}": "закрыто; следующее откроется {t}",
    "no call window in the next 8 days": "нет окон звонков в ближайшие 8 дней",
    "Delivery to the portal": "Отправка на портал",
    "waiting to be sent": "ждут отправки",
    "refused by the portal": "отклонены порталом",
    "Alarms": "Тревоги",
    "No alarm.": "Тревог нет.",
    "portal_token": "Портал отклоняет токен (ответов 401/403: {d})",
    "portal_down": "Портал недоступен или отвечает ошибкой (отправок ждут: {d})",
    "import_incomplete": "Загрузка заявок за {d} не завершена",
    "sip_lost": "Узел {d}: потеряна регистрация SIP",
    "node_silent": "Узел {d} молчит",
    "Nodes": "Узлы",
    "Pause calling": "Приостановить обзвон",
    "Resume calling": "Возобновить обзвон",
    "Reason": "Причина",
    "A reason is required.": "Укажите причину.",
    "satisfied": "доволен",
    "unsatisfied": "не доволен",
    "no_input": "без ответа кнопкой",
    "no_answer": "не дозвонились",
    "opted_out": "отказался от звонков",
    "not_called": "не звонили",
    "Reveal": "Показать",
    "updated": "обновлено",
    # settings
    "Campaign settings": "Настройки кампании",
    "Call windows": "Окна звонков",
    "mon": "пн",
    "tue": "вт",
    "wed": "ср",
    "thu": "чт",
    "fri": "пт",
    "sat": "сб",
    "sun": "вс",
    "ranges like 09:00-13:00, 14:00-20:00; empty: no calls": "интервалы вида 09:00-13:00, "
    "14:00-20:00; пусто: не звонить",
    "Blackout dates": "Даты без звонков",
    "Holiday calendar (country)": "Календарь праздников (страна)",
    "Holidays use the windows of": "В праздники окна как в",
    "Working Saturdays use the windows of": "Рабочие субботы — окна как в",
    "Channels (calls at once)": "Каналы (звонков одновременно)",
    "New calls per second": "Новых звонков в секунду",
    "Maximum attempts": "Наибольшее число попыток",
    "Survey deadline": "Срок опроса",
    "Retry after busy": "Повтор после «занято»",
    "Retry after no answer": "Повтор после «не ответил»",
    "Retry after a trunk fault": "Повтор после сбоя линии",
    "Extra calls after no key": "Доп. звонков, если не нажал кнопку",
    "Save": "Сохранить",
    "Back to the file's values": "Вернуть значения из файла",
    "Saved; every node applies it within seconds.": "Сохранено; все узлы применят это "
    "в течение нескольких секунд.",
    "Not saved: correct the fields marked.": "Не сохранено: исправьте отмеченные поля.",
    "The file's values are in force.": "Действуют значения из файла конфигурации.",
    "Live settings saved by {by} at {at} are in force.": "Действуют настройки, сохранённые "
    "{by} в {at}.",
    "Back to the file's values: done.": "Значения из файла восстановлены.",
    "The next 7 days": "Ближайшие 7 дней",
    "Date": "Дата",
    "Day": "День",
    "Windows": "Окна",
    "normal": "обычный",
    "holiday": "праздник",
    "working_weekend": "рабочая суббота",
    "blackout": "без звонков",
    "none": "нет",
    # dnc
    "Do-not-call list": "Список «не звонить»",
    "Search (any phone format)": "Поиск (любой формат номера)",
    "Search": "Найти",
    "Add": "Добавить",
    "Note": "Примечание",
    "Remove": "Удалить",
    "Source": "Источник",
    "Added": "Добавлен",
    "Added by": "Кто добавил",
    "Import CSV (phone,note)": "Импорт CSV (phone,note)",
    "Import": "Импортировать",
    "Export": "Выгрузить",
    "{n} number(s)": "номеров: {n}",
    "Not a valid phone number.": "Неверный номер телефона.",
    "Added.": "Добавлен.",
    "Already on the list.": "Уже в списке.",
    "Removed.": "Удалён.",
    "Imported {n}, already listed or invalid {m}.": "Импортировано {n}, уже были или "
    "неверные: {m}.",
    # dead letters
    "Request": "Заявка",
    "HTTP": "HTTP",
    "The portal's answer": "Ответ портала",
    "Tries": "Попыток",
    "Retry": "Отправить снова",
    "Retry all": "Отправить все снова",
    "No dead letter.": "Недоставленных нет.",
    "Re-queued {n}.": "Поставлено в очередь: {n}.",
    # users
    "Name": "Имя",
    "Role": "Роль",
    "Disabled": "Отключён",
    "yes": "да",
    "no": "нет",
    "Add user": "Добавить пользователя",
    "Set role": "Сменить роль",
    "New password": "Новый пароль",
    "Set password": "Сменить пароль",
    "Disable": "Отключить",
    "Enable": "Включить",
    "Done.": "Готово.",
    # audit
    "When": "Когда",
    "Who": "Кто",
    "Address": "Адрес",
    "What": "Что",
    "Target": "Объект",
    "Before": "До",
    "After": "После",
    "Filter": "Отбор",
    "Action": "Действие",
    "{n} entr(ies)": "записей: {n}",
}

RU.update(RU_ANALYTICS)


def translate(text: str, lang: str) -> str:
    if lang == "en":
        return text
    return RU.get(text, text)
