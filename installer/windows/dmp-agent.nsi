; Agent DMP / DMP workstation agent: per-user Windows installer (no administrator rights).
;
; Built by installer/windows/build.sh, which prepares the staging directory:
;   makensis /DSTAGING=DIR /DVERSION=X.Y.Z /DOUTFILE=FILE.exe [/DLZMA] [/DPYTHON_MISSING] dmp-agent.nsi
; DIR holds python\ (the Python embeddable distribution, its ._pth naming ..\lib), lib\ (the
; agent and its libraries for win_amd64), wheels\ (the agent's wheel), dmp-agent.cmd and
; LISEZMOI-README.txt. Everything goes to %LOCALAPPDATA%\Programs\DMP Agent; the user's data
; (%LOCALAPPDATA%\dmp-agent: enrolment, outbox) is never touched, not even by the uninstaller.

Unicode true
!include "MUI2.nsh"

!ifndef STAGING
  !error "makensis /DSTAGING=DIR: installer/windows/build.sh prepares DIR"
!endif
!ifndef VERSION
  !define VERSION "0.0.0"
!endif
!ifndef OUTFILE
  !define OUTFILE "dmp-agent-${VERSION}-setup.exe"
!endif

!define APP "Agent DMP"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
!define RUN_VALUE "DMP Agent"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\DMP Agent"
!define MENU "$SMPROGRAMS\${APP}"
; pythonw: no console window for the agent and its page.
!define PYTHONW "$INSTDIR\python\pythonw.exe"

Name "${APP}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\DMP Agent"
RequestExecutionLevel user
!ifdef LZMA
  SetCompressor /SOLID lzma  ; a third smaller, eight times slower to build
!else
  SetCompressor zlib
!endif
ShowInstDetails show
ShowUninstDetails show
VIProductVersion "${VERSION}.0"
VIAddVersionKey /LANG=1036 "ProductName" "${APP}"
VIAddVersionKey /LANG=1036 "FileDescription" "Installation de l'agent DMP du poste de travail"
VIAddVersionKey /LANG=1036 "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=1036 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=1036 "LegalCopyright" "Apache-2.0"

!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "${PYTHONW}"
!define MUI_FINISHPAGE_RUN_PARAMETERS "-m agent.cli run --open-page"
!define MUI_FINISHPAGE_RUN_TEXT "$(StartNow)"
!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES

; The user's Windows language when it is one of these, else French (the first).
!insertmacro MUI_LANGUAGE "French"
!insertmacro MUI_LANGUAGE "English"

LangString StartNow ${LANG_FRENCH} "Démarrer l'agent DMP maintenant"
LangString StartNow ${LANG_ENGLISH} "Start the DMP agent now"
LangString PageLink ${LANG_FRENCH} "Page de l'agent DMP"
LangString PageLink ${LANG_ENGLISH} "DMP agent page"
LangString UninstallLink ${LANG_FRENCH} "Désinstaller l'agent DMP"
LangString UninstallLink ${LANG_ENGLISH} "Uninstall the DMP agent"
LangString Stopping ${LANG_FRENCH} "Arrêt de l'agent DMP en cours d'exécution..."
LangString Stopping ${LANG_ENGLISH} "Stopping the running DMP agent..."
LangString DataKept ${LANG_FRENCH} "Vos données restent dans $LOCALAPPDATA\dmp-agent (enrôlement du poste, dépôts en attente)."
LangString DataKept ${LANG_ENGLISH} "Your data stays in $LOCALAPPDATA\dmp-agent (workstation enrolment, pending deposits)."
LangString PythonMissing ${LANG_FRENCH} "Cet installateur a été construit sans la distribution Python embarquée : l'agent ne démarrera pas. Voir python\PYTHON-MISSING-MANQUANT.txt dans $INSTDIR."
LangString PythonMissing ${LANG_ENGLISH} "This installer was built without the Python embeddable distribution: the agent will not start. See python\PYTHON-MISSING-MANQUANT.txt in $INSTDIR."

; Ends only the agents started from this installation's interpreter (files in use cannot
; be replaced nor removed); the outbox survives a killed agent by design.
!macro StopAgent
  DetailPrint "$(Stopping)"
  nsExec::ExecToLog `powershell.exe -NoProfile -NonInteractive -Command "Get-CimInstance Win32_Process | Where-Object { $$_.ExecutablePath -like '$INSTDIR\python\*' } | Invoke-CimMethod -MethodName Terminate | Out-Null"`
  Pop $0
!macroend

Section "${APP}" SecAgent
  SectionIn RO
  !insertmacro StopAgent
  ; A new version brings its own libraries: none of the previous ones may linger.
  RMDir /r "$INSTDIR\lib"
  RMDir /r "$INSTDIR\wheels"
  SetOutPath "$INSTDIR"
  File /r "${STAGING}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateDirectory "${MENU}"
  CreateShortcut "${MENU}\${APP}.lnk" "${PYTHONW}" "-m agent.cli run --open-page"
  CreateShortcut "${MENU}\$(PageLink).lnk" "${PYTHONW}" "-m agent.cli page"
  CreateShortcut "${MENU}\$(UninstallLink).lnk" "$INSTDIR\uninstall.exe"
  WriteRegStr HKCU "${RUN_KEY}" "${RUN_VALUE}" '"${PYTHONW}" -m agent.cli run'

  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "DMP agent"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1

!ifdef PYTHON_MISSING
  MessageBox MB_ICONEXCLAMATION|MB_OK "$(PythonMissing)" /SD IDOK
!endif
SectionEnd

Section "Uninstall"
  !insertmacro StopAgent
  DeleteRegValue HKCU "${RUN_KEY}" "${RUN_VALUE}"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  Delete "${MENU}\*.lnk"
  RMDir "${MENU}"
  ; Only what the installer put there (and the byte-code Python wrote beside it), never a
  ; blind recursive delete of $INSTDIR.
  RMDir /r "$INSTDIR\python"
  RMDir /r "$INSTDIR\lib"
  RMDir /r "$INSTDIR\wheels"
  Delete "$INSTDIR\dmp-agent.cmd"
  Delete "$INSTDIR\LISEZMOI-README.txt"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DetailPrint "$(DataKept)"
SectionEnd
